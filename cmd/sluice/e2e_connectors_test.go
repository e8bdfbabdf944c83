package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// daemon is a `sluice run` process the test stops with SIGTERM.
type daemon struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func startDaemon(t *testing.T, stateDir string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"run", "--state-dir", stateDir}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &errb}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return d
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sluice exited with %v:\n%s", err, d.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("sluice did not stop:\n%s", d.stderr.String())
	}
}

func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < to; i++ {
		fmt.Fprintf(f, `{"n":%d}`+"\n", i)
	}
}

// numbersIn returns the n of every line of path. The sink may be writing
// the file as it is read: a last line without its newline is a write under
// way, not yet there (the sink writes whole lines, and a graceful stop leaves
// none unterminated).
func numbersIn(t *testing.T, path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var ev struct{ Data struct{ N int } }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: torn line %q", path, sc.Text())
		}
		out = append(out, ev.Data.N)
	}
	return out
}

// TestE2ETailRotationAndRestart follows a log through a rename rotation and
// two graceful restarts: every line arrives exactly once, in order.
func TestE2ETailRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	logPath := filepath.Join(dir, "app.log")
	outPath := filepath.Join(dir, "out.jsonl")
	task := write(t, dir, "tail.toml", fmt.Sprintf(`name = "tail"
[source]
type = "file"
path = %q
mode = "tail"
poll_interval = "20ms"
rotate_wait = "300ms"
[sink]
type = "file"
path = %q
`, logPath, outPath))

	appendLines(t, logPath, 0, 100)
	d := startDaemon(t, state, task)
	testkit.WaitFor(t, "the first 100 lines", func() bool { return len(numbersIn(t, outPath)) >= 100 })
	appendLines(t, logPath, 100, 150)
	// Rotate: the writer renames the log, writes a little more into the old
	// file, then starts a new one.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, logPath+".1", 150, 160)
	appendLines(t, logPath, 160, 200)
	testkit.WaitFor(t, "200 lines", func() bool { return len(numbersIn(t, outPath)) >= 200 })
	d.stop(t)

	// While stopped, the log grows; a restart picks up exactly there.
	appendLines(t, logPath, 200, 260)
	d = startDaemon(t, state, task)
	appendLines(t, logPath, 260, 300)
	testkit.WaitFor(t, "300 lines", func() bool { return len(numbersIn(t, outPath)) >= 300 })
	d.stop(t)
	d = startDaemon(t, state, task)
	appendLines(t, logPath, 300, 310)
	testkit.WaitFor(t, "310 lines", func() bool { return len(numbersIn(t, outPath)) >= 310 })
	d.stop(t)

	if data, _ := os.ReadFile(outPath); !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("%s ends in an unterminated line after a graceful stop", outPath)
	}
	got := numbersIn(t, outPath)
	if len(got) != 310 {
		t.Fatalf("got %d lines, want 310 (graceful restarts neither skip nor repeat)", len(got))
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("line %d holds %d: %v", i, n, got)
		}
	}
}

// TestE2EHTTPIngestSinkDownAndBack posts from many clients at once while the
// webhook behind the task is down, then back: clients only get 200 for
// delivered events, retry on 503, and every event arrives.
func TestE2EHTTPIngestSinkDownAndBack(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	seen := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var ev struct{ Data struct{ Client, I int } }
			json.Unmarshal([]byte(l), &ev)
			seen[fmt.Sprint(ev.Data.Client, "/", ev.Data.I)]++
		}
		mu.Unlock()
	}))
	defer hook.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	task := write(t, dir, "ingest.toml", fmt.Sprintf(`name = "ingest"
[source]
type = "http"
address = %q
token = "${env:INGEST_TOKEN}"
response_timeout = "1s"
concurrency = 4
[sink]
type = "http"
url = %q
batch = { max_events = 50, max_wait = "20ms" }
[retry]
policy = "custom"
attempts = 1000
initial = "50ms"
max = "100ms"
`, addr, hook.URL))
	cmd := exec.Command(sluiceBin, "run", "--state-dir", filepath.Join(dir, "state"), task)
	cmd.Env = append(os.Environ(), "INGEST_TOKEN=s3cret")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testkit.WaitFor(t, "the ingest port", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// Without the token: 401.
	resp, err := http.Post("http://"+addr+"/", "application/x-ndjson", strings.NewReader(`{"x":1}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	}

	const clients, perClient = 20, 25
	var got503 atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				body := fmt.Sprintf(`{"client":%d,"i":%d}`, c, i)
				start := time.Now()
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer s3cret")
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							break
						}
						if resp.StatusCode != http.StatusServiceUnavailable {
							t.Errorf("client %d event %d: status %d", c, i, resp.StatusCode)
							return
						}
						got503.Add(1)
					}
					if time.Since(start) > testkit.Scale(testkit.DefaultWait) {
						t.Errorf("client %d event %d never accepted (%d attempts)", c, i, attempt)
						return
					}
					time.Sleep(50 * time.Millisecond) // the client's retry back-off, not synchronisation
				}
			}
		}()
	}
	// The webhook stays down until the ingest answered 503 (past its
	// response_timeout, the events not delivered).
	testkit.WaitFor(t, "a client to get a 503", func() bool { return got503.Load() > 0 })
	up.Store(true)
	wg.Wait()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit %v:\n%s", err, errb.String())
	}
	if got503.Load() == 0 {
		t.Fatal("no client saw a 503 while the sink was down")
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range clients {
		for i := range perClient {
			if seen[fmt.Sprint(c, "/", i)] == 0 {
				t.Fatalf("event %d/%d never delivered (%d distinct delivered)", c, i, len(seen))
			}
		}
	}
}
