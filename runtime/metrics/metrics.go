// Package metrics is the process's Prometheus registry. Components receive a
// *Set through component.Env and create their collectors through it, so that
// one process serving many tasks exposes one consistent set of metric
// families, each labelled by task.
package metrics

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Set owns a Prometheus registry and hands out collectors by name. Asking
// twice for the same name returns the same collector, so every task and
// every component instance can ask without coordinating.
type Set struct {
	Registry *prometheus.Registry
	mu       sync.Mutex
	vecs     map[string]prometheus.Collector
}

// New returns an empty set.
func New() *Set {
	return &Set{Registry: prometheus.NewRegistry(), vecs: map[string]prometheus.Collector{}}
}

// Namespace prefixes every metric name.
const Namespace = "sluice"

func get[T prometheus.Collector](s *Set, name string, mk func() T) T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.vecs[name]; ok {
		t, ok := c.(T)
		if !ok {
			panic(fmt.Sprintf("metrics: %s registered with another type", name))
		}
		return t
	}
	c := mk()
	s.Registry.MustRegister(c)
	s.vecs[name] = c
	return c
}

// Counter returns the counter family name (without namespace) with labels.
func (s *Set) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	return get(s, name, func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	})
}

// Gauge returns the gauge family name with labels.
func (s *Set) Gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return get(s, name, func() *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	})
}

// Histogram returns the histogram family name with labels and buckets (nil:
// latency buckets from 50µs to 10s).
func (s *Set) Histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	if buckets == nil {
		buckets = prometheus.ExponentialBucketsRange(0.00005, 10, 16)
	}
	return get(s, name, func() *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	})
}

// Forget removes, from every family with the label, the series whose label
// has value: a task a reload removed leaves no series behind. It returns
// how many series went.
func (s *Set) Forget(label, value string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.vecs {
		if v, ok := c.(interface {
			DeletePartialMatch(prometheus.Labels) int
		}); ok {
			n += v.DeletePartialMatch(prometheus.Labels{label: value})
		}
	}
	return n
}
