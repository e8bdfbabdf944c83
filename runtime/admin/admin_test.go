package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

func TestAdminAPI(t *testing.T) {
	ms := metrics.New()
	cfg := &config.Task{
		Name:      "gen",
		Source:    config.Component{Type: "generate", Instance: generate.New(&generate.Config{Rate: 2000, BatchSize: 10, Preset: "orders", Seed: 1})},
		Sink:      config.Component{Type: "stdout", Instance: stdout.New(io.Discard)},
		Tolerance: "all",
		Engine:    config.Engine{Concurrency: 1, Order: "partition", MaxInFlight: 4, MaxEvents: 100, MaxEvent: 1 << 20},
	}
	task := runner.New(cfg, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- task.Run(ctx) }()
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{Token: "t"}))
	defer srv.Close()

	get := func(path string) (int, string) {
		return call(t, http.MethodGet, srv.URL+path, "", "Authorization: Bearer t")
	}
	post := func(path string) int {
		code, _ := call(t, http.MethodPost, srv.URL+path, "", "Authorization: Bearer t", "Content-Type: application/json")
		return code
	}
	testkit.WaitFor(t, "the task to be ready", func() bool {
		code, _ := get("/readyz")
		return code == 200
	})
	if code, body := get("/tasks"); code != 200 || !strings.Contains(body, `"name":"gen"`) || !strings.Contains(body, `"state":"Running"`) {
		t.Fatalf("%d %s", code, body)
	}
	if post("/tasks/gen/pause") != 200 || task.State() != engine.Paused {
		t.Fatalf("pause: state %v", task.State())
	}
	// The reader finishes the read under way, then parks until resumed:
	// once it is parked, nothing more comes in, and the API says so.
	testkit.WaitBlocked(t, "(*Task).waitResume")
	before := task.Stats().In
	var paused TaskView
	if _, body := get("/tasks/gen"); json.Unmarshal([]byte(body), &paused) != nil || paused.State != "Paused" || paused.Stats.In != before {
		t.Fatalf("a paused task: %s, want state Paused and %d events in", body, before)
	}
	if post("/tasks/gen/resume") != 200 || task.State() != engine.Running {
		t.Fatalf("resume: state %v", task.State())
	}
	if code, _ := get("/tasks/nope"); code != 404 {
		t.Fatalf("unknown task: %d", code)
	}
	var v TaskView
	_, body := get("/tasks/gen")
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Stats.In == 0 {
		t.Fatalf("%s %v", body, err)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `sluice_events_in_total{task="gen"}`) {
		t.Fatalf("metrics: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatal("healthz")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatal("a stopped task is not ready")
	}
}
