package sdk

import (
	"errors"
	"time"
)

// Log levels.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

// Log writes msg to the task's log at level, tagged with the task and
// module names. The host samples guest logs, so logging per record is
// possible but not free.
func Log(level int, msg string) { hostLog(uint32(level), msg) }

// Debugf logs at debug level. The format takes fmt's verbs for strings,
// numbers, booleans, errors and Stringers (the SDK formats them without
// fmt, which would double a plugin's size); format anything else yourself.
func Debugf(format string, args ...any) { Log(LevelDebug, sprintf(format, args...)) }

// Infof logs at info level.
func Infof(format string, args ...any) { Log(LevelInfo, sprintf(format, args...)) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { Log(LevelWarn, sprintf(format, args...)) }

// Errorf logs at error level.
func Errorf(format string, args ...any) { Log(LevelError, sprintf(format, args...)) }

// Metric kinds of the host import.
const (
	metricCounterAdd = 0
	metricGaugeSet   = 1
	metricGaugeAdd   = 2
)

// CounterAdd adds delta (> 0) to the counter name, exported as the task's
// sluice_wasm_guest_counter_total{name=...}.
func CounterAdd(name string, delta float64) { hostMetric(metricCounterAdd, name, delta) }

// GaugeSet sets the gauge name (sluice_wasm_guest_gauge{name=...}).
func GaugeSet(name string, v float64) { hostMetric(metricGaugeSet, name, v) }

// GaugeAdd adds delta to the gauge name.
func GaugeAdd(name string, delta float64) { hostMetric(metricGaugeAdd, name, delta) }

// Errors of the key-value state.
var (
	ErrStateFull     = errors.New("sdk: state store is full")
	ErrStateTooLarge = errors.New("sdk: state key or value too large (key <= 1 KiB, value <= 1 MiB)")
)

// State is the transform's key-value state, kept by the host: shared by
// every instance of the transform in the task, surviving instance
// replacement, and saved across restarts when the task sets
// persist_state.
var State kvState

type kvState struct{ buf []byte }

// Get returns the value of key. The slice is valid until the next Get.
func (s *kvState) Get(key []byte) ([]byte, bool) {
	if s.buf == nil {
		s.buf = make([]byte, 4096)
	}
	for {
		n := hostKVGet(key, s.buf)
		if n < 0 {
			return nil, false
		}
		if n <= len(s.buf) {
			return s.buf[:n], true
		}
		s.buf = make([]byte, n)
	}
}

// Put stores val under key; ttl > 0 expires it (millisecond precision:
// ttl is truncated to whole milliseconds, and a ttl under 1ms counts as
// 1ms, not as none).
func (s *kvState) Put(key, val []byte, ttl time.Duration) error {
	switch hostKVPut(key, val, ttlMillis(ttl)) {
	case 0:
		return nil
	case 1:
		return ErrStateFull
	case 2:
		return ErrStateTooLarge
	}
	return errors.New("sdk: state put failed")
}

// Add stores val under key only when key holds no live entry, atomically
// across every instance of the transform: of several instances adding one
// key at once, exactly one gets true. ttl > 0 expires the entry (as in
// Put: whole milliseconds, at least 1). Use it to claim a key (dedupe,
// first-seen); Get then tells who claimed it.
func (s *kvState) Add(key, val []byte, ttl time.Duration) (bool, error) {
	switch hostKVAdd(key, val, ttlMillis(ttl)) {
	case 0:
		return true, nil
	case 4:
		return false, nil
	case 1:
		return false, ErrStateFull
	case 2:
		return false, ErrStateTooLarge
	}
	return false, errors.New("sdk: state add failed")
}

// ttlMillis is ttl as the host takes it: whole milliseconds, 0 for none.
// A positive ttl under 1ms is 1ms: 0 would keep the entry forever.
func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// Delete removes key.
func (s *kvState) Delete(key []byte) { hostKVDelete(key) }
