package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestReloadProblemsHideSecretValues: a reload refused because a secret key
// (component.Secret) holds a value of the wrong type does not quote that
// value, neither in the 422 answer of POST /reload nor in the log; nor does
// sluice validate. It did (review).
func TestReloadProblemsHideSecretValues(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	task := write(t, dir, "task.toml", `name = "gen"
[source]
type = "generate"
rate = 50
[sink]
type = "file"
path = "`+out+`"
`)
	addr := testkit.FreeAddr(t)
	tokenFile := write(t, dir, "token", reloadToken+"\n")
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"),
		"--admin-addr", addr, "--admin-token-file", tokenFile, task)
	p.WaitLog(t, "task running")
	a := adminClient{t: t, base: "http://" + addr}

	const secret = "99887766554433"
	if err := os.WriteFile(task, []byte(`name = "gen"
[source]
type = "generate"
rate = 50
[sink]
type = "postgres"
dsn = "postgres://app@127.0.0.1:1/db"
table = "t"
password = `+secret+`
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var ans reloadAnswer
	code := a.do(http.MethodPost, "/reload", &ans)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /reload: %d %+v", code, ans)
	}
	b, _ := json.Marshal(ans)
	if strings.Contains(string(b), secret) {
		t.Errorf("the 422 of POST /reload quotes the password: %s", b)
	}
	p.WaitLog(t, "reload refused")
	if p.LogHas(secret) {
		t.Errorf("the log quotes the password")
	}
	p.Stop(t)
	if r := sluice(t, "", "validate", task); r.code == 0 || strings.Contains(r.stdout+r.stderr, secret) || !strings.Contains(r.stdout+r.stderr, "password") {
		t.Errorf("sluice validate: %+v: want a failure naming the key, without its value", r)
	}
}
