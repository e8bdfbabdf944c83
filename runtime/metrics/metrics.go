// Package metrics is the process's metric registry. Components receive a
// *Set through component.Env and create their metrics through it, so that
// one process serving many tasks exposes one consistent set of metric
// families, each labelled by task.
//
// The metrics are github.com/VictoriaMetrics/metrics counters, gauges and
// Prometheus histograms, written in the Prometheus text format (0.0.4)
// without the Prometheus client and the protobuf runtime it needs even to
// write text (about 2.9 MB of binary, and init work at every start). The
// types here are small wrappers: a component resolves its label values
// once (WithLabelValues) and keeps the Counter, whose Inc and Add are one
// atomic add, with no map lookup or string building per event.
package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	vm "github.com/VictoriaMetrics/metrics"
)

// Namespace prefixes every metric name.
const Namespace = "sluice"

// maxLabels bounds the labels of a family: a series is found by an array
// of its label values, which needs no allocation.
const maxLabels = 4

type labelKey [maxLabels]string

// kind is the type of a family.
type kind uint8

const (
	counterKind kind = iota
	floatCounterKind
	gaugeKind
	gaugeFuncKind
	histogramKind
)

// kindNames name the kinds in messages.
var kindNames = [...]string{counterKind: "counter", floatCounterKind: "float counter", gaugeKind: "gauge", gaugeFuncKind: "gauge function", histogramKind: "histogram"}

// Set holds the metric families of a process and hands them out by name.
// Asking twice for the same name returns the same family, so every task
// and every component instance can ask without coordinating.
//
// A nil *Set hands out working metrics that nobody exposes: components
// need no branch for a missing set.
type Set struct {
	vm       *vm.Set
	mu       sync.Mutex
	families map[string]*family // by full name
	process  bool               // RegisterProcess was called
}

// New returns an empty set.
func New() *Set {
	return &Set{vm: vm.NewSet(), families: map[string]*family{}}
}

// family is one metric name: its help, type, label names and series.
type family struct {
	vm      *vm.Set // the set's, or a private one for a nil *Set's families
	name    string  // with the namespace
	help    string
	kind    kind
	labels  []string
	order   []int // indexes of labels sorted by name: the order series names list them in
	buckets []float64

	mu     sync.RWMutex // series
	series map[labelKey]*series
}

// series is one metric of a family: a name with labels, as registered in
// the VictoriaMetrics set, and its value.
type series struct {
	name   string
	values labelKey
	metric any         // *vm.Counter, *vm.FloatCounter, *vm.Gauge, *vm.PrometheusHistogram
	fn     *funcHolder // gauge functions
}

func (s *Set) family(name, help string, k kind, buckets []float64, labels []string) *family {
	if len(labels) > maxLabels {
		panic(fmt.Sprintf("metrics: %s has %d labels, at most %d are supported", name, len(labels), maxLabels))
	}
	full := Namespace + "_" + name
	mk := func(set *vm.Set) *family {
		f := &family{vm: set, name: full, help: help, kind: k, labels: slices.Clone(labels), buckets: buckets, series: map[labelKey]*series{}}
		f.order = make([]int, len(labels))
		for i := range f.order {
			f.order[i] = i
		}
		slices.SortStableFunc(f.order, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
		return f
	}
	if s == nil {
		return mk(vm.NewSet())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.families[full]; ok {
		if f.kind != k {
			panic(fmt.Sprintf("metrics: %s registered as a %s, asked for as a %s", full, kindNames[f.kind], kindNames[k]))
		}
		return f
	}
	f := mk(s.vm)
	s.families[full] = f
	return f
}

// get returns the series with values (as many as the family has labels),
// creating it.
func (f *family) get(values labelKey, n int) *series {
	if n != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %q, given %d values", f.name, f.labels, n))
	}
	f.mu.RLock()
	sr, ok := f.series[values]
	f.mu.RUnlock()
	if ok {
		return sr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.getLocked(values)
}

func (f *family) getLocked(values labelKey) *series {
	if sr, ok := f.series[values]; ok {
		return sr
	}
	sr := &series{name: f.seriesName(values), values: values}
	switch f.kind {
	case counterKind:
		sr.metric = f.vm.NewCounter(sr.name)
	case floatCounterKind:
		sr.metric = f.vm.NewFloatCounter(sr.name)
	case gaugeKind:
		sr.metric = f.vm.NewGauge(sr.name, nil)
	case gaugeFuncKind:
		sr.fn = &funcHolder{}
		sr.metric = f.vm.NewGauge(sr.name, sr.fn.value)
	case histogramKind:
		sr.metric = f.vm.NewPrometheusHistogramExt(sr.name, f.buckets)
	}
	f.series[values] = sr
	return sr
}

// seriesName is name{label="value",...}, labels sorted by name (as the
// Prometheus client wrote them), values escaped.
func (f *family) seriesName(values labelKey) string {
	if len(f.labels) == 0 {
		return f.name
	}
	var b strings.Builder
	b.WriteString(f.name)
	b.WriteByte('{')
	for i, j := range f.order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.labels[j])
		b.WriteString(`="`)
		escapeLabelValue(&b, values[j])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func escapeLabelValue(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

// remove unregisters a series; the caller holds f.mu.
func (f *family) removeLocked(sr *series) {
	delete(f.series, sr.values)
	f.vm.UnregisterMetric(sr.name)
}

// forget removes the series whose label has value.
func (f *family) forget(label, value string) int {
	i := slices.Index(f.labels, label)
	if i < 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, sr := range f.series {
		if k[i] == value {
			f.removeLocked(sr)
			n++
		}
	}
	return n
}

// Vec is a family of metrics of type M told apart by their label values.
type Vec[M any] struct {
	f      *family
	prefix labelKey // values fixed by Curry
	fixed  int
	wrap   func(*series) M
}

// CounterVec, FloatCounterVec, GaugeVec and HistogramVec are the families
// a Set hands out.
type (
	CounterVec      = Vec[Counter]
	FloatCounterVec = Vec[FloatCounter]
	GaugeVec        = Vec[Gauge]
	HistogramVec    = Vec[Observer]
)

// WithLabelValues returns the metric with these label values (in the
// order of the family's labels, after those fixed by Curry), creating it.
// Resolve it once and keep it: this is a map lookup under a lock.
func (v *Vec[M]) WithLabelValues(values ...string) M {
	k, n := v.key(values)
	return v.wrap(v.f.get(k, n))
}

// Curry returns the family with its first labels fixed to values: its
// WithLabelValues takes the remaining ones.
func (v *Vec[M]) Curry(values ...string) *Vec[M] {
	k, n := v.key(values)
	if n > len(v.f.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %q, curried with %d values", v.f.name, v.f.labels, n))
	}
	return &Vec[M]{f: v.f, prefix: k, fixed: n, wrap: v.wrap}
}

// Delete removes the metric with these label values; it tells whether
// there was one.
func (v *Vec[M]) Delete(values ...string) bool {
	k, n := v.key(values)
	if n != len(v.f.labels) {
		return false
	}
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	sr, ok := v.f.series[k]
	if ok {
		v.f.removeLocked(sr)
	}
	return ok
}

func (v *Vec[M]) key(values []string) (labelKey, int) {
	k, n := v.prefix, v.fixed
	if n+len(values) > maxLabels {
		panic(fmt.Sprintf("metrics: %s has labels %q, given %d values", v.f.name, v.f.labels, n+len(values)))
	}
	n += copy(k[n:], values)
	return k, n
}

// Counter is a counter of events: Inc and Add are one atomic add.
type Counter struct{ c *vm.Counter }

// Inc adds one.
func (c Counter) Inc() { c.c.Inc() }

// Add adds n.
func (c Counter) Add(n uint64) { c.c.AddInt64(int64(n)) }

// Value returns the count.
func (c Counter) Value() float64 { return float64(c.c.Get()) }

// FloatCounter is a counter that takes fractions (a WASM guest's own
// counters). Its Add takes a lock: integer counts belong in a Counter.
type FloatCounter struct{ c *vm.FloatCounter }

// Add adds v, which must not be negative.
func (c FloatCounter) Add(v float64) { c.c.Add(v) }

// Value returns the count.
func (c FloatCounter) Value() float64 { return c.c.Get() }

// Gauge is a value that goes up and down.
type Gauge struct{ g *vm.Gauge }

// Set sets the value.
func (g Gauge) Set(v float64) { g.g.Set(v) }

// Add adds v (a compare-and-swap loop).
func (g Gauge) Add(v float64) { g.g.Add(v) }

// Inc adds one.
func (g Gauge) Inc() { g.g.Add(1) }

// Dec subtracts one.
func (g Gauge) Dec() { g.g.Add(-1) }

// Value returns the value.
func (g Gauge) Value() float64 { return g.g.Get() }

// Observer is a histogram's series: Observe counts a value in its bucket
// and in the sum (negative values and NaN are ignored).
type Observer struct{ h *vm.PrometheusHistogram }

// Observe records v.
func (o Observer) Observe(v float64) { o.h.Update(v) }

// Counter returns the counter family name (without namespace) with labels.
func (s *Set) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{f: s.family(name, help, counterKind, nil, labels), wrap: func(sr *series) Counter {
		return Counter{sr.metric.(*vm.Counter)}
	}}
}

// FloatCounter returns the counter family name whose counts take
// fractions.
func (s *Set) FloatCounter(name, help string, labels ...string) *FloatCounterVec {
	return &FloatCounterVec{f: s.family(name, help, floatCounterKind, nil, labels), wrap: func(sr *series) FloatCounter {
		return FloatCounter{sr.metric.(*vm.FloatCounter)}
	}}
}

// Gauge returns the gauge family name with labels.
func (s *Set) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{f: s.family(name, help, gaugeKind, nil, labels), wrap: func(sr *series) Gauge {
		return Gauge{sr.metric.(*vm.Gauge)}
	}}
}

// DefaultBuckets are the buckets of a histogram given none: latencies
// from 50µs to 10s, 16 buckets growing by the same factor (the bounds the
// Prometheus client's ExponentialBucketsRange(0.00005, 10, 16) gave).
var DefaultBuckets = ExponentialBucketsRange(0.00005, 10, 16)

// Histogram returns the histogram family name with labels and buckets
// (their upper bounds, increasing; nil: DefaultBuckets). Its series are
// written as Prometheus histograms: cumulative le buckets, _sum, _count.
func (s *Set) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	return &HistogramVec{f: s.family(name, help, histogramKind, buckets, labels), wrap: func(sr *series) Observer {
		return Observer{sr.metric.(*vm.PrometheusHistogram)}
	}}
}

// GaugeFuncVec is a family of gauges whose values are computed when the
// metrics are written.
type GaugeFuncVec struct{ f *family }

// GaugeFunc returns the family name of gauges computed by functions.
func (s *Set) GaugeFunc(name, help string, labels ...string) *GaugeFuncVec {
	return &GaugeFuncVec{f: s.family(name, help, gaugeFuncKind, nil, labels)}
}

// Set makes fn compute the series with labelValues. Setting it again (a
// task restarted by a reload) replaces the function, so that a family
// never holds a series twice. The returned function removes the series,
// unless another function replaced this one meanwhile. fn runs when the
// metrics are written: it must not block.
func (v *GaugeFuncVec) Set(fn func() float64, labelValues ...string) (remove func()) {
	var k labelKey
	if n := copy(k[:], labelValues); n != len(v.f.labels) || len(labelValues) > maxLabels {
		panic(fmt.Sprintf("metrics: %s has labels %q, given %d values", v.f.name, v.f.labels, len(labelValues)))
	}
	mine := &fn
	v.f.mu.Lock()
	sr := v.f.getLocked(k)
	sr.fn.fn.Store(mine)
	v.f.mu.Unlock()
	return func() {
		v.f.mu.Lock()
		defer v.f.mu.Unlock()
		if cur, ok := v.f.series[k]; ok && cur == sr && sr.fn.fn.CompareAndSwap(mine, nil) {
			v.f.removeLocked(sr)
		}
	}
}

// Forget removes, from every family with the label, the series whose label
// has value: a task a reload removed leaves no series behind. It returns
// how many series went.
func (s *Set) Forget(label, value string) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	fams := make([]*family, 0, len(s.families))
	for _, f := range s.families {
		fams = append(fams, f)
	}
	s.mu.Unlock()
	n := 0
	for _, f := range fams {
		n += f.forget(label, value)
	}
	return n
}

// funcHolder is the function of a gauge series, replaceable while the
// series is registered.
type funcHolder struct {
	fn atomic.Pointer[func() float64]
}

func (h *funcHolder) value() float64 {
	if p := h.fn.Load(); p != nil {
		return (*p)()
	}
	return 0
}

// ExponentialBucketsRange returns count bucket bounds from lo to hi, each
// the previous one times the same factor (computed as the Prometheus
// client does, so that bounds stay the same to the last digit).
func ExponentialBucketsRange(lo, hi float64, count int) []float64 {
	if count < 2 || lo <= 0 || hi <= lo {
		panic(fmt.Sprintf("metrics: ExponentialBucketsRange(%v, %v, %d): needs 0 < lo < hi and count >= 2", lo, hi, count))
	}
	growth := math.Pow(hi/lo, 1.0/float64(count-1))
	b := make([]float64, count)
	for i := range b {
		b[i] = lo * math.Pow(growth, float64(i))
	}
	return b
}
