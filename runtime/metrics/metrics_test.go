package metrics_test

import (
	"testing"

	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
)

// A function set again under its label values (a task restarted by a
// reload) replaces the first: the family never holds a series twice.
func TestGaugeFuncReplacesByKey(t *testing.T) {
	s := metrics.New()
	g := s.GaugeFunc("g", "help", "task")
	g.Set(func() float64 { return 1 }, "orders")
	g.Set(func() float64 { return 2 }, "orders")
	s.GaugeFunc("g", "help", "task").Set(func() float64 { return 3 }, "clicks")
	s.RegisterProcess("v1")
	fams := metricstest.Gather(t, s)
	got := map[string]float64{}
	for _, m := range fams["sluice_g"].Samples {
		got[m.Labels["task"]] = m.Value
	}
	if len(got) != 2 || got["orders"] != 2 || got["clicks"] != 3 {
		t.Fatalf("sluice_g: %v", got)
	}
	for _, name := range []string{"sluice_build_info", "process_resident_memory_bytes", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// Forget drops a removed task's function series with its other series.
func TestForgetDropsGaugeFuncs(t *testing.T) {
	s := metrics.New()
	s.GaugeFunc("g", "help", "task").Set(func() float64 { return 1 }, "orders")
	s.Counter("c", "help", "task").WithLabelValues("orders").Inc()
	if n := s.Forget("task", "orders"); n != 2 {
		t.Fatalf("forgot %d series, want 2", n)
	}
	for _, f := range metricstest.Gather(t, s) {
		if len(f.Samples) > 0 {
			t.Errorf("%s still has series", f.Name)
		}
	}
}

// The remove function of a replaced gauge function leaves its successor
// alone (a reload's new run registered its own meanwhile); the
// successor's removes the series.
func TestGaugeFuncRemoveOnlyOwn(t *testing.T) {
	s := metrics.New()
	g := s.GaugeFunc("buffer_records", "help", "task")
	oldRemove := g.Set(func() float64 { return 10 }, "orders")
	newRemove := g.Set(func() float64 { return 7 }, "orders")
	oldRemove()
	if v, ok := metricstest.Gather(t, s).Value("sluice_buffer_records", "task", "orders"); !ok || v != 7 {
		t.Fatalf("after the old run's remove: %v %v, want the new run's 7", v, ok)
	}
	newRemove()
	if _, ok := metricstest.Gather(t, s).Value("sluice_buffer_records", "task", "orders"); ok {
		t.Fatal("the new run's remove left the series")
	}
}
