package metrics

import (
	"testing"
)

func TestForget(t *testing.T) {
	s := New()
	s.Counter("events_in_total", "in", "task").WithLabelValues("a").Add(2)
	s.Counter("events_in_total", "in", "task").WithLabelValues("b").Add(3)
	s.Gauge("lag", "lag", "task", "partition").WithLabelValues("a", "0").Set(1)
	s.Histogram("write_seconds", "w", nil, "task").WithLabelValues("a").Observe(0.1)
	s.Gauge("untasked", "no task label", "pool").WithLabelValues("x").Set(1)
	if n := s.Forget("task", "a"); n != 3 {
		t.Fatalf("Forget removed %d series, want 3", n)
	}
	fams, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			id := f.GetName()
			for _, l := range m.GetLabel() {
				id += " " + l.GetName() + "=" + l.GetValue()
			}
			left = append(left, id)
		}
	}
	if len(left) != 2 || left[0] != "sluice_events_in_total task=b" || left[1] != "sluice_untasked pool=x" {
		t.Fatalf("series left: %q, want b's counter and the untasked gauge", left)
	}
}
