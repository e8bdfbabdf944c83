package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/generate"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// The metrics parse with Prometheus's own parser, and hold what operators
// look for: process and Go runtime collectors, build info, task state,
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
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the text format does not parse: %v", err)
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines", "sluice_build_info", "sluice_task_state",
		"sluice_bytes_in_total", "sluice_bytes_out_total", "sluice_event_latency_seconds", "sluice_events_in_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if f := fams["sluice_build_info"]; f != nil && !strings.Contains(f.String(), "1.2.3-test") {
		t.Errorf("build info %s", f)
	}
	running := false
	for _, m := range fams["sluice_task_state"].GetMetric() {
		lbl := map[string]string{}
		for _, l := range m.GetLabel() {
			lbl[l.GetName()] = l.GetValue()
		}
		if lbl["state"] == "Running" && lbl["task"] == "gen" && m.GetGauge().GetValue() == 1 {
			running = true
		} else if m.GetGauge().GetValue() != 0 {
			t.Errorf("state %v is 1", lbl)
		}
	}
	if !running {
		t.Errorf("no sluice_task_state{task=gen,state=Running} 1: %s", fams["sluice_task_state"])
	}
	if h := fams["sluice_event_latency_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() == 0 {
		t.Error("no latency observed")
	}

	// OpenMetrics when the scraper asks for it.
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	om, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Body.Close()
	body := readAll(t, om)
	if ct := om.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("not OpenMetrics: %s\n%s", ct, body[max(0, len(body)-200):])
	}
}
