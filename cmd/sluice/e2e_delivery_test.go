package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
