// Package metrics is the process's Prometheus registry. Components receive a
// *Set through component.Env and create their collectors through it, so that
// one process serving many tasks exposes one consistent set of metric
// families, each labelled by task.
package metrics

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// RegisterProcess adds what operators expect of any process: the Go
// runtime's and the process's collectors (go_*, process_resident_memory_bytes,
// open file descriptors...) and sluice_build_info{version, goversion}, always
// 1. A process serving metrics calls it once.
func (s *Set) RegisterProcess(version string) {
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := s.Gauge("build_info", "Build information; the value is always 1.", "version", "goversion")
	info.WithLabelValues(version, runtime.Version()).Set(1)
}

// GaugeFunc adds to the gauge family name a function that emits its samples
// when the registry is gathered (a value and its label values, in the order
// of labels). key identifies the function, and is the value of the label
// that names its series (the task): registering another one under the same
// key (a task restarted by a reload) replaces it, so that a family never
// holds a series twice, and Forget(label, key) removes it.
func (s *Set) GaugeFunc(name, help string, labels []string, key string, fn func(emit func(v float64, labelValues ...string))) {
	c := get(s, name, func() *funcCollector {
		return &funcCollector{desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil), fns: map[string]func(func(float64, ...string)){}}
	})
	c.mu.Lock()
	c.fns[key] = fn
	c.mu.Unlock()
}

// funcCollector is a gauge family whose samples come from functions.
type funcCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	fns  map[string]func(func(float64, ...string))
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	fns := make([]func(func(float64, ...string)), 0, len(c.fns))
	for _, fn := range c.fns {
		fns = append(fns, fn)
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(func(v float64, lv ...string) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, lv...)
		})
	}
}

// forget drops the function registered under key.
func (c *funcCollector) forget(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.fns[key]; !ok {
		return 0
	}
	delete(c.fns, key)
	return 1
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
		if f, ok := c.(*funcCollector); ok {
			// A function's key is the value of the label naming its
			// series (the task).
			n += f.forget(value)
		}
	}
	return n
}
