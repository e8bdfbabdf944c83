package stdin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestSIGTERMWithIdleOpenStdin: standard input stays open and idle (a pipe
// whose writer neither writes nor closes); SIGTERM must still drain what
// was read and exit 0 within the shutdown deadline.
func TestSIGTERMWithIdleOpenStdin(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, "task.toml")
	if err := os.WriteFile(task, []byte("name = \"idle\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := testkit.StartSluice(t, testkit.ProcOptions{StdinFrom: r}, "run", "--log-format", "json", "--shutdown-timeout", "5s", task)
	r.Close() // the child has its own copy
	for i := range 3 {
		fmt.Fprintf(w, `{"n":%d}`+"\n", i)
	}
	p.WaitLog(t, `"data":{"n":2}`)
	// Input stays open and idle from here on.
	start := time.Now()
	p.Stop(t)
	if el := time.Since(start); el > testkit.Scale(5*time.Second) {
		t.Fatalf("stopping took %s, more than the shutdown deadline", el)
	}
	data, _ := os.ReadFile(p.Log)
	for i := range 3 {
		if !strings.Contains(string(data), fmt.Sprintf(`"data":{"n":%d}`, i)) {
			t.Fatalf("event %d was not delivered:\n%s", i, data)
		}
	}
	if !strings.Contains(string(data), `"message":"task stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", data)
	}
}
