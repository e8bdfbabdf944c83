package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/generate"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// tapEnd reads a tap stream until it ends and returns its `end` event
// (nil when it ended without one). It fails after more than maxKeepAlives
// keep-alive comments: a stream that only keeps itself alive is one that
// never ends.
func tapEnd(t *testing.T, resp *http.Response, maxKeepAlives int) *TapEnd {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var end *TapEnd
	event, kept := "", 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ": keep-alive":
			if kept++; maxKeepAlives >= 0 && kept > maxKeepAlives {
				t.Fatalf("the task's run ended, but its tap stream stays open (%d keep-alives): the client waits forever", kept)
			}
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "end":
			end = &TapEnd{}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), end); err != nil {
				t.Fatalf("end event %s: %v", line, err)
			}
		case strings.HasPrefix(line, "data: ") && end != nil:
			t.Fatalf("an event after the end: %s", line)
		}
	}
	return end
}

// A tap is attached to one run of a task. When that run ends (a reload
// restarts or removes the task, or its source finished) the stream ends
// with an `end` event naming the task's state: nothing closed it, so it
// stayed open sending keep-alives, `sluice tap` and the console's tap
// showed nothing more and never ended, and after a reload they watched
// the stopped run. Keep-alives come every millisecond here, so a stream
// that never ends fails the test at once (found in review).
func TestTapEndsWhenTheRunEnds(t *testing.T) {
	ms := metrics.New()
	cfg := &config.Task{
		Name:      "gen",
		Source:    config.Component{Type: "generate", Instance: generate.New(&generate.Config{Rate: 200, BatchSize: 5, Preset: "orders", Seed: 1})},
		Sink:      config.Component{Type: "stdout", Instance: stdout.New(&syncBuffer{})},
		Tolerance: "all",
		Engine:    config.Engine{Concurrency: 1, Order: "partition", MaxInFlight: 4, MaxEvents: 100, MaxEvent: 1 << 20},
	}
	task := runner.New(cfg, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{Token: "t", keepAlive: time.Millisecond}))
	t.Cleanup(srv.Close) // after get's Cleanup closed the stream: Close waits for its handler
	testkit.WaitFor(t, "the task to run", func() bool { return task.State() == engine.Running })

	resp := get(t, srv.URL+"/tasks/gen/tap?stage=sink")
	if resp.StatusCode != 200 {
		t.Fatalf("tap: %d", resp.StatusCode)
	}
	cancel() // the task's run ends (as on a reload that restarts it)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A tap attached now ends at once. The select of the stream's loop
	// picks its closed channel at least as often as a keep-alive tick, so
	// 100 keep-alives before the end are a chance of 2^-100.
	late := get(t, srv.URL+"/tasks/gen/tap?stage=sink")
	if end := tapEnd(t, late, 100); end == nil || end.State != "Stopped" || !strings.Contains(end.Message, "the task's run ended (Stopped)") {
		t.Fatalf("a tap of an ended run: end event %+v", end)
	}
	// The tap attached while the run went on ends too, after the records
	// sampled before the stop (and keep-alives, however many).
	if end := tapEnd(t, resp, -1); end == nil || end.State != "Stopped" {
		t.Fatalf("the tap of the run that ended: end event %+v", end)
	}
}
