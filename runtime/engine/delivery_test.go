package engine_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// load builds a task from TOML with every builtin, as `sluice run` does.
func load(t *testing.T, dir, text string) engine.Definition {
	t.Helper()
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	path := filepath.Join(dir, "task.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &config.Loader{Registry: r, BuildFilter: builtins.BuildFilter, StateDir: filepath.Join(dir, "state"), Shared: component.NewShared(),
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	task, err := l.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return runner.Definition(task)
}

func writeEvents(t *testing.T, path string, n int, poison func(int) bool) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		kind := "ok"
		if poison != nil && poison(i) {
			kind = "poison"
		}
		fmt.Fprintf(&b, `{"n":%d,"kind":%q}`+"\n", i, kind)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hook is a webhook whose behaviour the test scripts.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	got      map[int]int // n -> deliveries
	requests atomic.Int64
	answer   atomic.Value // func(body string) int
}

func newHook(t *testing.T) *hook {
	h := &hook{got: map[int]int{}}
	h.answer.Store(func(string) int { return 200 })
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		code := h.answer.Load().(func(string) int)(string(body))
		if code == -1 { // hang until the client gives up
			<-r.Context().Done()
			return
		}
		if code != 200 {
			w.WriteHeader(code)
			return
		}
		h.mu.Lock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var ev struct{ Data struct{ N int } }
			json.Unmarshal([]byte(l), &ev)
			h.got[ev.Data.N]++
		}
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) delivered() map[int]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int]int{}
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

func dlqRecords(t *testing.T, path string) []map[string]any {
	data, _ := os.ReadFile(path)
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

const retryFast = `
[retry]
policy = "custom"
attempts = 3
initial = "20ms"
max = "40ms"
`

func fileTask(dir, url, extra string) string {
	return fmt.Sprintf(`name = "d"
[source]
type = "file"
path = "in.jsonl"
[sink]
type = "http"
url = %q
timeout = "30s"
batch = { max_events = 500, max_wait = "50ms" }
[dead_letter]
type = "file"
path = "dlq.jsonl"
%s`, url, extra)
}

func TestSink500Then200IsRetried(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	var calls atomic.Int64
	h.answer.Store(func(string) int {
		if calls.Add(1) <= 2 {
			return 500
		}
		return 200
	})
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 20, nil)
	run := engine.New(load(t, dir, fileTask(dir, h.URL, retryFast)), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.delivered(); len(got) != 20 {
		t.Fatalf("delivered %v", got)
	}
	s := run.Stats()
	if s.Retries != 2 || s.Delivered != 20 || s.DeadLettered != 0 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, s)
}

func TestSink400GoesToTheDeadLetterQueueAtOnce(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(body string) int {
		if strings.Contains(body, "poison") {
			return 400
		}
		return 200
	})
	// One poison event in a batch of 500: isolated, the other 499 delivered.
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 500, func(i int) bool { return i == 321 })
	run := engine.New(load(t, dir, fileTask(dir, h.URL, retryFast)), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.delivered()
	if len(got) != 499 || got[321] != 0 {
		t.Fatalf("delivered %d events (321: %d)", len(got), got[321])
	}
	recs := dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))
	if len(recs) != 1 || recs[0]["stage"] != "sink" || recs[0]["attempts"].(float64) != 1 {
		t.Fatalf("dead letters %v", recs)
	}
	if n := h.requests.Load(); n > 25 {
		t.Fatalf("%d requests to isolate one poison event", n)
	}
	s := run.Stats()
	if s.Retries != 0 || s.Delivered != 499 || s.DeadLettered != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, s)
}

func TestSinkThatHangsTimesOutAndGivesUp(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return -1 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 5, nil)
	// Every other test gives the sink a timeout no loaded machine reaches;
	// this one's subject is the timeout.
	text := strings.Replace(fileTask(dir, h.URL, retryFast), `timeout = "30s"`, `timeout = "300ms"`, 1)
	run := engine.New(load(t, dir, text), opts(t))
	done := make(chan error, 1)
	go func() { done <- run.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		t.Fatalf("the task still runs after %s: the sink's timeout does not end a hanging request", testkit.Scale(testkit.DefaultWait))
	}
	recs := dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))
	if len(recs) != 5 || recs[0]["attempts"].(float64) != 4 || !strings.Contains(fmt.Sprint(recs[0]["error"]), "retryable") {
		t.Fatalf("dead letters %v", recs)
	}
	checkCounts(t, run.Stats())
}

// TestToleranceNoneBlocksThenResumes: the sink is down past the retry
// window; the task blocks keeping its position, and a restart once the
// sink is back delivers everything, nothing lost.
func TestToleranceNoneBlocksThenResumes(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 300, nil)
	text := fileTask(dir, h.URL, retryFast+"\n[errors]\ntolerance = \"none\"\n")
	text = strings.Replace(text, "batch = { max_events = 500", "batch = { max_events = 100", 1)
	text = strings.Replace(text, "type = \"file\"\npath = \"in.jsonl\"", "type = \"file\"\npath = \"in.jsonl\"\nbatch = { max_events = 100 }", 1)
	run := engine.New(load(t, dir, text), opts(t))
	err := run.Run(context.Background())
	if !errors.Is(err, engine.ErrBlocked) || run.State() != engine.Blocked {
		t.Fatalf("err %v state %v", err, run.State())
	}
	if len(h.delivered()) != 0 || len(dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))) != 0 {
		t.Fatal("a blocked task must not deliver or dead-letter")
	}
	h.answer.Store(func(string) int { return 200 })
	run = engine.New(load(t, dir, text), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.delivered()
	for i := range 300 {
		if got[i] == 0 {
			t.Fatalf("event %d lost after the restart", i)
		}
	}
}

// TestToleranceAllDeadLettersExactlyTheFailed: with the sink down past the
// retry window, exactly the events that could not be delivered go to the
// dead-letter queue and the task goes on.
func TestToleranceAllDeadLettersExactlyTheFailed(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(body string) int {
		var ev struct{ Data struct{ N int } }
		json.Unmarshal([]byte(strings.SplitN(body, "\n", 2)[0]), &ev)
		if ev.Data.N >= 100 && ev.Data.N < 200 {
			return 503 // down while the second hundred goes by
		}
		return 200
	})
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 300, nil)
	text := fileTask(dir, h.URL, retryFast)
	text = strings.Replace(text, "batch = { max_events = 500", "batch = { max_events = 100", 1)
	text = strings.Replace(text, "type = \"file\"\npath = \"in.jsonl\"", "type = \"file\"\npath = \"in.jsonl\"\nbatch = { max_events = 100 }", 1)
	run := engine.New(load(t, dir, text), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))
	if len(recs) != 100 {
		t.Fatalf("%d dead letters, want 100", len(recs))
	}
	for i, r := range recs {
		n := int(r["event"].(map[string]any)["data"].(map[string]any)["n"].(float64))
		if n != 100+i {
			t.Fatalf("dead letter %d holds event %d", i, n)
		}
	}
	if got := h.delivered(); len(got) != 200 {
		t.Fatalf("delivered %d", len(got))
	}
	s := run.Stats()
	if s.Delivered != 200 || s.DeadLettered != 100 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, s)
}

func TestConditionErrorGoesToTheDeadLetterQueue(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"n":1,"amount":5}`+"\n"+`{"n":2,"amount":"five"}`+"\n"+`{"n":3}`+"\n"+`{"n":4,"amount":50}`+"\n"), 0o644)
	text := fileTask(dir, h.URL, "[filter]\ncondition = 'data.amount > 10'\n")
	run := engine.New(load(t, dir, text), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.delivered()
	if len(got) != 1 || got[4] != 1 {
		t.Fatalf("delivered %v", got)
	}
	recs := dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))
	if len(recs) != 1 || recs[0]["stage"] != "filter" {
		t.Fatalf("dead letters %v", recs)
	}
	s := run.Stats()
	// n=1 fails the condition, n=3 reads a missing field: both filtered.
	if s.Filtered != 2 || s.DeadLettered != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBlockedTaskResumes: with HoldBlocked (an admin API), a blocked task
// keeps its source and resumes from its committed position.
func TestBlockedTaskResumes(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 50, nil)
	text := fileTask(dir, h.URL, retryFast+"\n[errors]\ntolerance = \"none\"\n")
	o := opts(t)
	o.HoldBlocked = true
	run := engine.New(load(t, dir, text), o)
	done := make(chan error, 1)
	go func() { done <- run.Run(context.Background()) }()
	testkit.WaitFor(t, "the task to block", func() bool { return run.State() == engine.Blocked })
	// A held task that had ended would also fail the checks after Resume
	// (an error, nothing delivered): no need to watch it for a while.
	select {
	case err := <-done:
		t.Fatalf("a held task ended: %v", err)
	default:
	}
	h.answer.Store(func(string) int { return 200 })
	run.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.delivered(); len(got) != 50 {
		t.Fatalf("delivered %d of 50 after resuming", len(got))
	}
}
