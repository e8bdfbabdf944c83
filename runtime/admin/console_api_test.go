package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/generate"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// syncBuffer is a sink's output the test reads while the task writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// consoleTask runs a generate task whose sink writes to out, and serves the
// API for it with token "t" and files.
func consoleTask(t *testing.T, out *syncBuffer, files TaskFiles) (*engine.Task, *httptest.Server) {
	t.Helper()
	ms := metrics.New()
	cfg := &config.Task{
		Name:      "gen",
		Source:    config.Component{Type: "generate", Instance: generate.New(&generate.Config{Rate: 200, BatchSize: 5, Preset: "orders", Seed: 1})},
		Sink:      config.Component{Type: "stdout", Instance: stdout.New(out)},
		Tolerance: "all",
		Engine:    config.Engine{Concurrency: 1, Order: "partition", MaxInFlight: 4, MaxEvents: 100, MaxEvent: 1 << 20},
	}
	task := runner.New(cfg, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{Token: "t", Files: func(string) TaskFiles { return files }}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	testkit.WaitFor(t, "the task to run", func() bool { return task.State() == engine.Running })
	return task, srv
}

func TestTaskDetailRateAndStages(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gen.toml")
	t.Setenv("SLUICE_TEST_SECRET", "sekrit-value")
	os.WriteFile(file, []byte("name = \"gen\"\n[source]\ntype = \"generate\"\npassword = \"hunter2\"\n[sink]\ntype = \"http\"\nurl = \"https://x/${env:SLUICE_TEST_SECRET}\"\n"), 0o644)
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{Path: file})
	auth := "Authorization: Bearer t"

	var d TaskDetail
	testkit.WaitFor(t, "two rate samples and delivered events", func() bool {
		_, body := call(t, "GET", srv.URL+"/tasks/gen", "", auth)
		d = TaskDetail{}
		return json.Unmarshal([]byte(body), &d) == nil && len(d.RateHistory) >= 2 && d.Counters.Delivered > 0
	})
	if d.Counters.Received < d.Counters.Delivered || d.Counters.BytesIn == 0 || d.Counters.BytesOut == 0 || d.Lag != nil {
		t.Fatalf("counters %+v lag %v", d.Counters, d.Lag)
	}
	if len(d.Stages) != 3 || d.Stages[0].ID != "source" || d.Stages[0].Type != "generate" || d.Stages[1].ID != "filter" || d.Stages[2].ID != "sink" || d.Stages[2].Type != "stdout" {
		t.Fatalf("stages %+v", d.Stages)
	}
	if d.Stages[0].In == 0 || d.Stages[2].Out == 0 || d.Stages[2].Out > d.Stages[0].In {
		t.Fatalf("stage counts %+v", d.Stages)
	}
	if strings.Contains(d.TOML, "hunter2") || strings.Contains(d.TOML, "sekrit") || strings.Contains(d.TOML, "SLUICE_TEST_SECRET") || !strings.Contains(d.TOML, `type = "generate"`) {
		t.Fatalf("toml not redacted:\n%s", d.TOML)
	}
	if d.Errors == nil {
		t.Fatal("errors must be a list, even empty")
	}
	// GET /tasks holds the same fields; the old "stats" stay.
	_, body := call(t, "GET", srv.URL+"/tasks", "", auth)
	for _, f := range []string{`"counters":`, `"rate":`, `"rate_history":[`, `"lag":null`, `"stats":{`, `"received":`, `"bytes_out":`} {
		if !strings.Contains(body, f) {
			t.Errorf("GET /tasks lacks %s: %s", f, body)
		}
	}
	if code, _ := call(t, "GET", srv.URL+"/tasks/gen", ""); code != 401 {
		t.Fatalf("task detail without the token: %d", code)
	}
}

// sseEvents reads events of an SSE stream until n were read.
func sseEvents(t *testing.T, resp *http.Response, n int) (names []string, data []string) {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	name := ""
	for len(data) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			names = append(names, name)
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	if len(data) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(data), n, sc.Err())
	}
	return names, data
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEventsStreamTasks(t *testing.T) {
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{})
	resp := get(t, srv.URL+"/events")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	names, data := sseEvents(t, resp, 2)
	var first, second []TaskView
	if names[0] != "tasks" || json.Unmarshal([]byte(data[0]), &first) != nil || json.Unmarshal([]byte(data[1]), &second) != nil {
		t.Fatalf("events %v %v", names, data)
	}
	if len(second) != 1 || second[0].Name != "gen" || second[0].Counters.Received < first[0].Counters.Received {
		t.Fatalf("second event %+v after %+v", second, first)
	}
}

func TestTapSamplesAStage(t *testing.T) {
	task, srv := consoleTask(t, &syncBuffer{}, TaskFiles{})
	resp := get(t, srv.URL+"/tasks/gen/tap?stage=sink&limit=3")
	if resp.StatusCode != 200 {
		t.Fatalf("tap: %d", resp.StatusCode)
	}
	names, data := sseEvents(t, resp, 3)
	for i, d := range data {
		var rec TapRecord
		if names[i] != "record" || json.Unmarshal([]byte(d), &rec) != nil || rec.Stage != "sink" || !bytes.Contains(rec.Event, []byte(`"specversion"`)) {
			t.Fatalf("record %d: %s %s", i, names[i], d)
		}
	}
	// limit=3: the stream ends by itself after the third record.
	if rest, _ := bufio.NewReader(resp.Body).ReadString(0); strings.Contains(rest, "data:") {
		t.Fatalf("more than the limit: %s", rest)
	}
	if code, body := call(t, "GET", srv.URL+"/tasks/gen/tap?stage=transform[3]", "", "Authorization: Bearer t"); code != 404 || !strings.Contains(body, "source, filter, sink") {
		t.Fatalf("unknown stage: %d %s", code, body)
	}
	// At most 4 taps at once: the fifth is refused, and closing one makes room.
	var stops []func()
	for range engine.MaxTaps {
		_, stop, err := task.Tap("source")
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	if code, _ := call(t, "GET", srv.URL+"/tasks/gen/tap?stage=source", "", "Authorization: Bearer t"); code != 429 {
		t.Fatalf("fifth tap: %d", code)
	}
	stops[0]()
	if _, stop, err := task.Tap("source"); err != nil {
		t.Fatalf("after closing one: %v", err)
	} else {
		stop()
	}
	for _, s := range stops[1:] {
		s()
	}
}

func TestDeadLetterBrowseAndReplay(t *testing.T) {
	dir := t.TempDir()
	dlq := filepath.Join(dir, "dlq.jsonl")
	var lines []string
	for i, task := range []string{"gen", "other", "gen", "gen"} {
		lines = append(lines, fmt.Sprintf(`{"event":{"specversion":"1.0","id":"dead-%d","source":"t","type":"t","data":{"n":%d}},"task":%q,"stage":"sink","error":{"class":"permanent","message":"refused %d by amqp://app:pw-%d@mq/"},"attempts":1,"position":{"stream":"s","partition":0,"offset":%d},"time":"2026-12-06T10:00:00Z"}`, i, i, task, i, i, i))
	}
	os.WriteFile(dlq, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := &syncBuffer{}
	_, srv := consoleTask(t, out, TaskFiles{DeadLetterPath: dlq})
	auth := "Authorization: Bearer t"

	code, body := call(t, "GET", srv.URL+"/tasks/gen/dlq?offset=1&limit=1", "", auth)
	var page DeadLetterPage
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || page.Total != 3 || len(page.Items) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	it := page.Items[0]
	if it.Stage != "sink" || it.Reason != "refused 2 by amqp://app:***@mq/" || it.Replayed || !strings.Contains(string(it.Event), `"dead-2"`) {
		t.Fatalf("item %+v", it)
	}
	code, body = call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", fmt.Sprintf(`{"ids":[%d]}`, it.ID), auth, "Content-Type: application/json")
	if code != 200 || !strings.Contains(body, `"replayed":1`) {
		t.Fatalf("replay: %d %s", code, body)
	}
	if !strings.Contains(out.String(), `"dead-2"`) {
		t.Fatal("the replayed event did not reach the sink")
	}
	_, body = call(t, "GET", srv.URL+"/tasks/gen/dlq?offset=1&limit=1", "", auth)
	if !strings.Contains(body, `"replayed":true`) {
		t.Fatalf("not marked replayed: %s", body)
	}
	// Replaying it again does nothing; an unknown id is a 404; a record of
	// another task sharing the file is not this task's.
	if _, body = call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", fmt.Sprintf(`{"ids":[%d]}`, it.ID), auth, "Content-Type: application/json"); !strings.Contains(body, `"replayed":0`) {
		t.Fatalf("second replay: %s", body)
	}
	if code, _ = call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", `{"ids":[7]}`, auth, "Content-Type: application/json"); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	if code, _ = call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", `{"ids":[1]}`, auth); code != 415 {
		t.Fatalf("replay without JSON content type: %d", code)
	}
	// The file grows: the new records count, a half-written one not yet.
	f, _ := os.OpenFile(dlq, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "%s\n%s", lines[0], lines[2][:40])
	f.Close()
	if _, body = call(t, "GET", srv.URL+"/tasks/gen/dlq?limit=500", "", auth); !strings.Contains(body, `"total":4`) || !strings.Contains(body, `"dead-0"`) {
		t.Fatalf("after an append: %s", body)
	}
	// Rotated: a new, smaller file is read from its start.
	os.Rename(dlq, dlq+".1")
	os.WriteFile(dlq, []byte(lines[3]+"\n"), 0o644)
	if _, body = call(t, "GET", srv.URL+"/tasks/gen/dlq", "", auth); !strings.Contains(body, `"total":1`) || !strings.Contains(body, `"dead-3"`) || !strings.Contains(body, `"id":0`) {
		t.Fatalf("after a rotation: %s", body)
	}
}

func TestDeadLetterBrowserNeedsAFile(t *testing.T) {
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{DeadLetterWhere: "the dead-letter queue is a kafka sink"})
	if code, body := call(t, "GET", srv.URL+"/tasks/gen/dlq", "", "Authorization: Bearer t"); code != 409 || !strings.Contains(body, "kafka sink") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestRewindRefusedWhenTheSourceCannot(t *testing.T) {
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{})
	h := []string{"Authorization: Bearer t", "Content-Type: application/json"}
	if code, body := call(t, "POST", srv.URL+"/tasks/gen/rewind", `{"to":"earliest"}`, h...); code != 409 || !strings.Contains(body, "generate source cannot") {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := call(t, "POST", srv.URL+"/tasks/gen/rewind", `{"to":"yesterday"}`, h...); code != 400 {
		t.Fatalf("bad target: %d", code)
	}
}

func TestPlaygroundAnswers(t *testing.T) {
	ms := metrics.New()
	pg := func(ctx context.Context, event, cfg string) ([][]byte, bool, error) {
		if strings.Contains(cfg, "oops") {
			return nil, false, &PositionError{Message: "fragment:2:5: bad", Line: 2, Column: 5}
		}
		return [][]byte{[]byte(event), []byte("text line")}, false, nil
	}
	srv := httptest.NewServer(Handler(nil, ms, Options{Token: "t", Playground: pg}))
	defer srv.Close()
	h := []string{"Authorization: Bearer t", "Content-Type: application/json"}
	code, body := call(t, "POST", srv.URL+"/playground", `{"event":"{\"a\":1}","config":"[filter]"}`, h...)
	if code != 200 || body != `{"outputs":[{"a":1},"text line"],"filtered":false}`+"\n" {
		t.Fatalf("%d %s", code, body)
	}
	code, body = call(t, "POST", srv.URL+"/playground", `{"event":"x","config":"oops"}`, h...)
	if code != 400 || !strings.Contains(body, `"line":2`) || !strings.Contains(body, `"column":5`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ = call(t, "POST", srv.URL+"/playground", `{"event":"x","config":""}`, "Content-Type: application/json"); code != 401 {
		t.Fatalf("without the token: %d", code)
	}
}

func runTask(t *testing.T, task *engine.Task) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
