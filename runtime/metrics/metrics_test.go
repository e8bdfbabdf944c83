package metrics

import (
	"testing"
)

// A function registered again under its key (a task restarted by a reload)
// replaces the first: the family never holds a series twice.
func TestGaugeFuncReplacesByKey(t *testing.T) {
	s := New()
	emit := func(task string, v float64) func(func(float64, ...string)) {
		return func(e func(float64, ...string)) { e(v, task) }
	}
	s.GaugeFunc("g", "help", []string{"task"}, "orders", emit("orders", 1))
	s.GaugeFunc("g", "help", []string{"task"}, "orders", emit("orders", 2))
	s.GaugeFunc("g", "help", []string{"task"}, "clicks", emit("clicks", 3))
	s.RegisterProcess("v1")
	fams, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	seen := map[string]bool{}
	for _, f := range fams {
		seen[f.GetName()] = true
		if f.GetName() != "sluice_g" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if len(got) != 2 || got["orders"] != 2 || got["clicks"] != 3 {
		t.Fatalf("sluice_g: %v", got)
	}
	for _, name := range []string{"sluice_build_info", "process_resident_memory_bytes", "go_goroutines"} {
		if !seen[name] {
			t.Errorf("no %s", name)
		}
	}
}

// Forget drops a removed task's function series with its other series.
func TestForgetDropsGaugeFuncs(t *testing.T) {
	s := New()
	s.GaugeFunc("g", "help", []string{"task"}, "orders", func(e func(float64, ...string)) { e(1, "orders") })
	s.Counter("c", "help", "task").WithLabelValues("orders").Inc()
	if n := s.Forget("task", "orders"); n != 2 {
		t.Fatalf("forgot %d series, want 2", n)
	}
	fams, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if len(f.GetMetric()) > 0 {
			t.Errorf("%s still has series", f.GetName())
		}
	}
}
