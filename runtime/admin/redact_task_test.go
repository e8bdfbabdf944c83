package admin

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTaskDetailHidesPasswordOnlyURL: a URL whose userinfo holds only a
// password (redis://:PASSWORD@host, the usual form for Redis with
// requirepass) does not show its password in the task view of GET
// /tasks/{name}. It did (review).
func TestTaskDetailHidesPasswordOnlyURL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gen.toml")
	raw := "name = \"gen\"\n[source]\ntype = \"redis\"\nurl = \"redis://:hunter2secret@cache:6379/0\"\nstream = \"orders\"\n[sink]\ntype = \"stdout\"\n"
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{Path: path})
	code, body := call(t, http.MethodGet, srv.URL+"/tasks/gen", "", "Authorization: Bearer t")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var d TaskDetail
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.TOML, "hunter2secret") {
		t.Errorf("GET /tasks/gen shows the URL's password:\n%s", d.TOML)
	}
}
