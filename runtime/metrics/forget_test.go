package metrics_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
)

func TestForget(t *testing.T) {
	s := metrics.New()
	s.Counter("events_in_total", "in", "task").WithLabelValues("a").Add(2)
	s.Counter("events_in_total", "in", "task").WithLabelValues("b").Add(3)
	s.Gauge("lag", "lag", "task", "partition").WithLabelValues("a", "0").Set(1)
	s.Histogram("write_seconds", "w", nil, "task").WithLabelValues("a").Observe(0.1)
	s.Gauge("untasked", "no task label", "pool").WithLabelValues("x").Set(1)
	if n := s.Forget("task", "a"); n != 3 {
		t.Fatalf("Forget removed %d series, want 3", n)
	}
	var left []string
	for _, f := range metricstest.Gather(t, s) {
		for _, m := range f.Samples {
			id := m.Name
			for _, l := range []string{"pool", "task"} {
				if v, ok := m.Labels[l]; ok {
					id += " " + l + "=" + v
				}
			}
			left = append(left, id)
		}
	}
	slices.Sort(left)
	if len(left) != 2 || left[0] != "sluice_events_in_total task=b" || left[1] != "sluice_untasked pool=x" {
		t.Fatalf("series left: %q, want b's counter and the untasked gauge", left)
	}
}

// Series created, counted, forgotten and written from several goroutines
// at once (tasks reloaded while a scraper reads): no race, and the
// exposition always parses.
func TestConcurrentUse(t *testing.T) {
	s := metrics.New()
	s.RegisterProcess("v1")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task := fmt.Sprintf("t%d", w)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				s.Counter("events_in_total", "in", "task").WithLabelValues(task).Inc()
				s.Histogram("write_seconds", "w", nil, "task").WithLabelValues(task).Observe(0.01)
				s.GaugeFunc("state", "s", "task").Set(func() float64 { return 1 }, task)
				if i%10 == 0 {
					s.Forget("task", task)
				}
			}
		}()
	}
	for range 20 {
		metricstest.Gather(t, s)
	}
	close(done)
	wg.Wait()
}
