package wasmhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// maxGuestMetrics bounds the metric names one transform may create, so a
// guest cannot blow up the process's metric cardinality.
const maxGuestMetrics = 256

// State is what every instance of one transform shares: its logger, its
// metrics and its key-value store.
type State struct {
	logger zerolog.Logger
	guest  zerolog.Logger // sampled: guests may log per record
	kv     *KV

	task, module string
	counters     *metrics.FloatCounterVec
	gauges       *metrics.GaugeVec
	mu           sync.Mutex
	metricNames  map[string]metricPair
	warnedFull   bool
	warnedKV     atomic.Bool
}

type metricPair struct {
	c metrics.FloatCounter
	g metrics.Gauge
}

func newState(logger *zerolog.Logger, task, module string, set *metrics.Set, kv *KV) *State {
	lg := zerolog.Nop()
	if logger != nil {
		lg = logger.With().Str(logx.Plugin, module).Logger()
	}
	if kv == nil {
		kv = NewKV(0)
	}
	s := &State{logger: lg, kv: kv, task: task, module: module, metricNames: map[string]metricPair{}}
	s.guest = lg.Sample(&zerolog.BurstSampler{Burst: 200, Period: time.Second})
	if set != nil {
		s.counters = set.FloatCounter("wasm_guest_counter_total", "Counters a WASM transform module increments (sluice.metric kind 0).", "task", "module", "name")
		s.gauges = set.Gauge("wasm_guest_gauge", "Gauges a WASM transform module sets (sluice.metric kinds 1 and 2).", "task", "module", "name")
		kv.Observe(
			set.Gauge("wasm_state_keys", "Entries in a WASM transform's key-value state (expired ones until swept).", "task", "module").WithLabelValues(task, module),
			set.Gauge("wasm_state_bytes", "Bytes a WASM transform's key-value state counts against its quota (keys, values, 64 per entry).", "task", "module").WithLabelValues(task, module),
			set.Counter("wasm_state_refused_total", "Writes to a WASM transform's key-value state refused because its quota (state_max_keys, state_max_bytes) was reached.", "task", "module").WithLabelValues(task, module))
	}
	return s
}

// metric returns the collectors for name, nil once the name cap is hit.
func (s *State) metric(name []byte) (metricPair, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.metricNames[string(name)]; ok {
		return p, true
	}
	if s.counters == nil {
		return metricPair{}, false
	}
	if len(s.metricNames) >= maxGuestMetrics {
		if !s.warnedFull {
			s.warnedFull = true
			s.logger.Warn().Int("limit", maxGuestMetrics).Msg("module created too many metric names; ignoring new ones")
		}
		return metricPair{}, false
	}
	n := string(name)
	p := metricPair{c: s.counters.WithLabelValues(s.task, s.module, n), g: s.gauges.WithLabelValues(s.task, s.module, n)}
	s.metricNames[n] = p
	return p, true
}

func stateOf(ctx context.Context) *instance {
	if c, ok := ctx.(*callCtx); ok {
		return c.inst
	}
	return nil
}

// guestBytes returns a view of guest memory, or nil when out of bounds.
func guestBytes(m api.Module, ptr, n uint64) ([]byte, bool) {
	return m.Memory().Read(uint32(ptr), uint32(n))
}

// Log levels of sluice.log.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

func hostLog(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	msg, ok := guestBytes(m, stack[1], stack[2])
	if inst == nil || !ok {
		return
	}
	lg := &inst.state.guest
	var ev *zerolog.Event
	switch uint32(stack[0]) {
	case LogDebug:
		ev = lg.Debug()
	case LogInfo:
		ev = lg.Info()
	case LogWarn:
		ev = lg.Warn()
	default:
		ev = lg.Error()
	}
	if ev != nil { // nil: sampled out or below the level; skip the copy
		if len(msg) > maxGuestLog {
			ev = ev.Int("truncated_from", len(msg))
			msg = msg[:maxGuestLog]
		}
		ev.Msg(string(msg))
	}
	checkHost(inst)
}

// maxGuestLog caps one guest log message.
const maxGuestLog = 64 << 10

// Metric kinds of sluice.metric.
const (
	MetricCounterAdd = 0
	MetricGaugeSet   = 1
	MetricGaugeAdd   = 2
)

func hostMetric(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	name, ok := guestBytes(m, stack[1], stack[2])
	// The name becomes a label value, and Prometheus refuses a whole
	// scrape holding one that is not UTF-8.
	if inst == nil || !ok || len(name) == 0 || len(name) > 128 || !utf8.Valid(name) {
		return
	}
	p, ok := inst.state.metric(name)
	if !ok {
		return
	}
	v := api.DecodeF64(stack[3])
	switch uint32(stack[0]) {
	case MetricCounterAdd:
		if v > 0 {
			p.c.Add(v)
		}
	case MetricGaugeSet:
		p.g.Set(v)
	case MetricGaugeAdd:
		p.g.Add(v)
	}
	checkHost(inst)
}

// Results of the kv imports.
const (
	KVMissing  = -1 // kv_get: no such key
	KVOK       = 0
	KVFull     = 1 // kv_put: the store is at its quota of entries or bytes
	KVTooLarge = 2 // kv_put: key or value over the limits
	KVBadArgs  = 3 // a pointer outside memory (kv_put, kv_add, kv_delete)
	KVExists   = 4 // kv_add: the key holds a live entry
	// KVGetBadArgs is kv_get's BAD_ARGS: negative, since every
	// non-negative result of kv_get is a value's length (it returned 3,
	// the length of a 3-byte value, until this was noticed).
	KVGetBadArgs = -2
)

func hostKVGet(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	key, ok := guestBytes(m, stack[0], stack[1])
	if inst == nil || !ok {
		bad := int32(KVGetBadArgs)
		stack[0] = uint64(uint32(bad))
		return
	}
	outside := false
	n := inst.state.kv.getInto(key, func(v []byte) bool {
		if uint64(len(v)) > uint64(uint32(stack[3])) { // not int: negative past 2^31 on 32-bit platforms
			return false
		}
		outside = !m.Memory().Write(uint32(stack[2]), v)
		return !outside
	})
	if outside {
		// The value fits buf_cap but not memory: the guest must not take
		// its buffer for the value.
		n = KVGetBadArgs
	}
	stack[0] = uint64(uint32(int32(n)))
	checkHost(inst)
}

// kvTTL is the TTL of kv_put's and kv_add's ttl_ms: <= 0 none; one past
// a time.Duration's range (about 292 years) is saturated to it, where the
// product would wrap, possibly to a TTL of a few milliseconds.
func kvTTL(ms uint64) time.Duration {
	v := int64(ms)
	switch {
	case v <= 0:
		return 0
	case v > math.MaxInt64/int64(time.Millisecond):
		return math.MaxInt64
	}
	return time.Duration(v) * time.Millisecond
}

func hostKVPut(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	key, ok1 := guestBytes(m, stack[0], stack[1])
	val, ok2 := guestBytes(m, stack[2], stack[3])
	if inst == nil || !ok1 || !ok2 {
		stack[0] = KVBadArgs
		return
	}
	res := inst.state.kv.Put(key, val, kvTTL(stack[4]))
	if res == KVFull {
		inst.state.full()
	}
	stack[0] = uint64(res)
	checkHost(inst)
}

// full warns, once per transform, that the state's quota refuses writes.
func (s *State) full() {
	if s.warnedKV.Swap(true) {
		return
	}
	q := s.kv.Quota()
	keys, bytes := s.kv.Size()
	s.logger.Warn().Int("keys", keys).Int64("bytes", bytes).Int("state_max_keys", q.Keys).Int64("state_max_bytes", q.Bytes).
		Msg("the module's key-value state reached its quota: writes of new entries fail (FULL) until entries expire or are deleted; raise state_max_keys or state_max_bytes if the module needs more")
}

func hostKVAdd(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	key, ok1 := guestBytes(m, stack[0], stack[1])
	val, ok2 := guestBytes(m, stack[2], stack[3])
	if inst == nil || !ok1 || !ok2 {
		stack[0] = KVBadArgs
		return
	}
	res := inst.state.kv.Add(key, val, kvTTL(stack[4]))
	if res == KVFull {
		inst.state.full()
	}
	stack[0] = uint64(res)
	checkHost(inst)
}

func hostKVDelete(ctx context.Context, m api.Module, stack []uint64) {
	inst := stateOf(ctx)
	key, ok := guestBytes(m, stack[0], stack[1])
	if inst == nil || !ok {
		stack[0] = KVBadArgs
		return
	}
	inst.state.kv.Delete(key)
	stack[0] = KVOK
	checkHost(inst)
}

// lineWriter turns a guest's stdout or stderr into log lines of at most
// maxLine bytes (longer ones are cut in pieces).
type lineWriter struct {
	log    zerolog.Logger
	stream string
	buf    []byte
	inst   *instance // whose budget the writing counts against
}

const (
	maxLine = 4096
	// hostChunk is how much work a host function does for a guest between
	// two budget checks.
	hostChunk = 64 << 10
)

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		// A guest may write its whole memory at once: check the budget
		// every hostChunk bytes.
		chunk := p[:min(len(p), hostChunk)]
		p = p[len(chunk):]
		for len(chunk) > 0 {
			end := bytes.IndexByte(chunk, '\n')
			line := end >= 0
			if !line {
				end = len(chunk)
			}
			take := min(end, maxLine-len(w.buf))
			w.buf = append(w.buf, chunk[:take]...)
			if line && take == end {
				w.flush()
				chunk = chunk[end+1:]
				continue
			}
			if len(w.buf) >= maxLine {
				w.flush()
			}
			chunk = chunk[take:]
		}
		if w.inst != nil {
			checkHost(w.inst)
		}
	}
	return n, nil
}

func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	ev := w.log.Info()
	if w.stream == "stderr" {
		ev = w.log.Warn()
	}
	if ev != nil { // nil: sampled out; skip the copy
		ev.Str("stream", w.stream).Msg(string(w.buf))
	}
	w.buf = w.buf[:0]
}

// randSource is the guest's random_get: crypto/rand, read hostChunk bytes
// at a time with a budget check in between, so that a guest asking for
// its whole memory of random bytes in a loop is stopped on time.
type randSource struct{ inst *instance }

func (r randSource) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), hostChunk)]
		if _, err := rand.Read(c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
		checkHost(r.inst)
	}
	return n, nil
}
