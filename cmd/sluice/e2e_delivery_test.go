package main

import (
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

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestE2EDeadLetterAndReplay: rejected and undecodable events land in the
// dead-letter file with their reason; once the cause is fixed, `sluice dlq
// replay` sends them through the task again.
func TestE2EDeadLetterAndReplay(t *testing.T) {
	var fixed atomic.Bool
	var mu sync.Mutex
	var received []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !fixed.Load() && strings.Contains(string(body), "bad") {
			http.Error(w, "unprocessable: bad", http.StatusUnprocessableEntity)
			return
		}
		mu.Lock()
		received = append(received, strings.Split(strings.TrimSpace(string(body)), "\n")...)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	task := write(t, dir, "task.toml", fmt.Sprintf(`name = "orders"
[source]
type = "stdin"
format = "json"
[sink]
type = "http"
url = %q
batch = { max_events = 100 }
[retry]
policy = "none"
[dead_letter]
type = "file"
path = "dlq.jsonl"
`, hook.URL))
	var in strings.Builder
	for i := range 10 {
		kind := "good"
		if i%4 == 1 {
			kind = "bad"
		}
		fmt.Fprintf(&in, `{"n":%d,"kind":%q}`+"\n", i, kind)
	}
	in.WriteString("this is not json\n")
	r := sluice(t, in.String(), "run", task)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if len(received) != 7 {
		t.Fatalf("delivered %d, want 7: %q", len(received), received)
	}
	dlqPath := filepath.Join(dir, "dlq.jsonl")
	data, err := os.ReadFile(dlqPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("dead letters:\n%s", data)
	}
	for _, l := range lines[:3] {
		var rec struct {
			Event    struct{ Data struct{ Kind string } }
			Stage    string
			Task     string
			Error    struct{ Class, Message string }
			Attempts int
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Stage != "sink" || rec.Task != "orders" || rec.Event.Data.Kind != "bad" ||
			rec.Error.Class != "event_permanent" || !strings.Contains(rec.Error.Message, "422") {
			t.Fatalf("sink dead letter: %s", l)
		}
	}
	if !strings.Contains(lines[3], `"event":"this is not json"`) || !strings.Contains(lines[3], `"stage":"decode"`) {
		t.Fatalf("decode dead letter: %s", lines[3])
	}

	show := sluice(t, "", "dlq", "show", dlqPath)
	if show.code != 0 || !strings.Contains(show.stdout, "4 records") || !strings.Contains(show.stdout, "stage sink  class event_permanent") {
		t.Fatalf("dlq show: %+v", show)
	}

	fixed.Store(true)
	mu.Lock()
	received = nil
	mu.Unlock()
	rep := sluice(t, "", "dlq", "replay", task, "--from", dlqPath)
	if rep.code != 0 || !strings.Contains(rep.stdout, "replayed 4 events: 4 delivered") {
		t.Fatalf("replay: %+v", rep)
	}
	if len(received) != 4 || !strings.Contains(strings.Join(received, "\n"), `"data":"this is not json"`) {
		t.Fatalf("replayed deliveries: %q", received)
	}
	// Replayed events keep their original ids.
	var ev struct{ ID string }
	json.Unmarshal([]byte(received[0]), &ev)
	if ev.ID != "stdin-0-22" {
		t.Fatalf("replayed event id %q", ev.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, "dlq.failed.jsonl")); !os.IsNotExist(err) {
		t.Fatal("an empty failed file was left behind")
	}
}

// TestE2EKill9DuringBufferedOutage: HTTP ingest answers 200 once events are
// in the disk buffer, while the webhook is down; sluice is killed with
// SIGKILL, the buffer's tail is torn, and after a restart with the webhook
// back every accepted event arrives.
func TestE2EKill9DuringBufferedOutage(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	seen := map[int]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var ev struct{ Data struct{ N int } }
			json.Unmarshal([]byte(l), &ev)
			seen[ev.Data.N]++
		}
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	addr := testkit.FreeAddr(t)
	task := write(t, dir, "buffered.toml", fmt.Sprintf(`name = "buffered"
[source]
type = "http"
address = %q
[sink]
type = "http"
url = %q
batch = { max_events = 20, max_wait = "10ms" }
buffer = { type = "disk", path = "buffer", max_size = "16MiB" }
[retry]
policy = "custom"
attempts = 100000
initial = "20ms"
max = "50ms"
`, addr, hook.URL))
	state := filepath.Join(dir, "state")
	start := func() *exec.Cmd {
		cmd := exec.Command(sluiceBin, "run", "--state-dir", state, task)
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "the ingest port", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return cmd
	}
	cmd := start()
	accepted := 0
	for n := range 300 {
		resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("event %d: %d (the buffer should accept while the sink is down)", n, resp.StatusCode)
		}
		accepted++
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// Tear the last segment's tail as a crash mid-write would.
	segs, _ := filepath.Glob(filepath.Join(dir, "buffer", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no buffer on disk")
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x40, 0, 0, 0, 0xde, 0xad}) // a frame header with no body
	f.Close()

	up.Store(true)
	cmd = start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testkit.WaitFor(t, "every accepted event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == accepted
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
	for n := range accepted {
		if seen[n] == 0 {
			t.Fatalf("event %d lost", n)
		}
	}
}
