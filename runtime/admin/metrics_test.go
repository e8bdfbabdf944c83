package admin

import (
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
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// The metrics parse (as the text format, every family with HELP and TYPE,
// histograms whole), and hold what operators look for: process and Go runtime collectors, build info, task state,
// bytes and end-to-end latency per task.
func TestMetricsParse(t *testing.T) {
	ms := metrics.New()
	ms.RegisterProcess("1.2.3-test")
	cfg := &config.Task{
		Name:      "gen",
		Source:    config.Component{Type: "generate", Instance: generate.New(&generate.Config{Rate: 500, BatchSize: 5, Preset: "orders", Seed: 1})},
		Sink:      config.Component{Type: "stdout", Instance: stdout.New(&syncBuffer{})},
		Tolerance: "all",
	}
	task := runner.New(cfg, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	runTask(t, task)
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{}))
	defer srv.Close()
	testkit.WaitFor(t, "delivered events", func() bool { return task.Stats().Out > 0 })

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	fams, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatalf("the text format does not parse: %v", err)
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines", "sluice_build_info", "sluice_task_state",
		"sluice_bytes_in_total", "sluice_bytes_out_total", "sluice_event_latency_seconds", "sluice_events_in_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if _, ok := fams.Value("sluice_build_info", "version", "1.2.3-test"); !ok {
		t.Errorf("build info %v", fams["sluice_build_info"])
	}
	running := false
	for _, m := range fams["sluice_task_state"].Samples {
		if m.Labels["state"] == "Running" && m.Labels["task"] == "gen" && m.Value == 1 {
			running = true
		} else if m.Value != 0 {
			t.Errorf("state %v is 1", m.Labels)
		}
	}
	if !running {
		t.Errorf("no sluice_task_state{task=gen,state=Running} 1: %v", fams["sluice_task_state"])
	}
	if n, _ := fams.Value("sluice_event_latency_seconds_count", "task", "gen"); n == 0 {
		t.Error("no latency observed")
	}

	// A scraper asking for OpenMetrics gets the text format, which
	// Prometheus reads as well (the Prometheus client answered in
	// OpenMetrics; VictoriaMetrics writes the text format only).
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	om, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Body.Close()
	if ct := om.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	if _, err := metricstest.Parse(om.Body); err != nil {
		t.Fatalf("the answer to an OpenMetrics scraper does not parse: %v", err)
	}
}
