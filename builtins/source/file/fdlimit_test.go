package file_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestGlobBeyondOpenFileLimit: a glob matching more files than the process
// may open (RLIMIT_NOFILE 64 here, 300 files) is read whole, in tail mode
// and in read mode, with the descriptors the source keeps open bounded, and
// without flooding the log: idle files are closed and reopened at their
// position when they grow.
func TestGlobBeyondOpenFileLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("lowers RLIMIT_NOFILE of a child process")
	}
	const files, lines = 300, 3
	for _, mode := range []string{"tail", "read"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			logs := filepath.Join(dir, "logs")
			os.Mkdir(logs, 0o755)
			for f := range files {
				var b strings.Builder
				for l := range lines {
					fmt.Fprintf(&b, "{\"f\":%d,\"l\":%d}\n", f, l)
				}
				os.WriteFile(filepath.Join(logs, fmt.Sprintf("f%03d.log", f)), []byte(b.String()), 0o644)
			}
			out := filepath.Join(dir, "out.jsonl")
			task := filepath.Join(dir, "task.toml")
			os.WriteFile(task, []byte(fmt.Sprintf(`name = "many"
[source]
type = "file"
path = "logs/*.log"
mode = %q
poll_interval = "50ms"
[sink]
type = "file"
path = %q
`, mode, out)), 0o644)
			p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir, MaxOpenFiles: 64}, "run", "--state-dir", filepath.Join(dir, "state"), task)
			count := func() int {
				data, _ := os.ReadFile(out)
				return bytes.Count(data, []byte("\n"))
			}
			if mode == "read" {
				if err := p.Err(); err != nil {
					t.Fatalf("read mode run: %v", err)
				}
			} else {
				testkit.WaitFor(t, "every line of every file", func() bool {
					if p.Exited() {
						t.Fatalf("sluice exited: %v", p.Err())
					}
					return count() >= files*lines
				})
				// Idle files were closed: new lines in all of them are
				// still read.
				for f := range files {
					fh, err := os.OpenFile(filepath.Join(logs, fmt.Sprintf("f%03d.log", f)), os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(fh, "{\"f\":%d,\"l\":%d}\n", f, lines)
					fh.Close()
				}
				testkit.WaitFor(t, "the lines appended to every file", func() bool { return count() >= files*(lines+1) })
				p.Stop(t)
			}
			want := files * lines
			if mode == "tail" {
				want = files * (lines + 1)
			}
			data, _ := os.ReadFile(out)
			seen := map[string]int{}
			for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				i := strings.Index(l, `"data":`)
				if i < 0 {
					t.Fatalf("output line %q", l)
				}
				seen[l[i:]]++
			}
			if len(seen) != want || count() != want {
				t.Fatalf("%d lines, %d distinct, want %d", count(), len(seen), want)
			}
			logData, _ := os.ReadFile(p.Log)
			if bytes.Contains(logData, []byte("too many open files")) {
				t.Errorf("the source ran out of descriptors:\n%s", firstLines(logData, 5))
			}
			// One "reading file" line per file at most, sampled beyond a
			// burst; the failure mode was thousands of lines a second.
			if n := bytes.Count(logData, []byte("\n")); n > files {
				t.Errorf("%d log lines for %d files:\n%s", n, files, firstLines(logData, 10))
			}
		})
	}
}

func firstLines(b []byte, n int) string {
	ls := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(ls[:min(n, len(ls))], "\n")
}
