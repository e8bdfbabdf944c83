package admin

import (
	"context"
	"encoding/json"
	"io"
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
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms))
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string) int {
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get("/tasks"); code != 200 || !strings.Contains(body, `"name":"gen"`) || !strings.Contains(body, `"state":"Running"`) {
		t.Fatalf("%d %s", code, body)
	}
	if post("/tasks/gen/pause") != 200 || task.State() != engine.Paused {
		t.Fatalf("pause: state %v", task.State())
	}
	time.Sleep(50 * time.Millisecond)
	before := task.Stats().In
	time.Sleep(150 * time.Millisecond)
	if after := task.Stats().In; after > before+10 {
		t.Fatalf("a paused task kept reading: %d -> %d", before, after)
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
