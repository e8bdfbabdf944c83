package metrics_test

import (
	"testing"

	"github.com/sluicehq/sluice/runtime/metrics"
)

// The per-event path: a resolved counter's Add is one atomic add, with no
// allocation.
func BenchmarkCounterAdd(b *testing.B) {
	c := metrics.New().Counter("events_in_total", "in", "task").WithLabelValues("orders")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(3)
		}
	})
}

// The per-batch path: a histogram observation.
func BenchmarkObserve(b *testing.B) {
	h := metrics.New().Histogram("sink_write_seconds", "w", nil, "task").WithLabelValues("orders")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(float64(i%1000) * 1e-5)
	}
}

// The per-failure path: a curried family's series looked up by its
// remaining label values, without allocating.
func BenchmarkWithLabelValues(b *testing.B) {
	v := metrics.New().Counter("events_failed_total", "f", "task", "stage", "error_type").Curry("orders")
	b.ReportAllocs()
	for b.Loop() {
		v.WithLabelValues("sink", "retryable").Inc()
	}
}
