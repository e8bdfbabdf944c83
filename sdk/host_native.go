//go:build !wasip1

package sdk

import (
	"sync"
	"time"
)

// In a native build (tests through sdktest) the host imports are served by
// an in-process Host.

// NativeHost receives what a plugin logs, measures and stores when it runs
// natively. sdktest installs one; it is not part of a WASM build.
type NativeHost interface {
	Log(level int, msg string)
	Metric(kind int, name string, v float64)
	KVGet(key []byte) ([]byte, bool)
	KVPut(key, val []byte, ttl time.Duration) int
	// KVAdd stores val only when key holds no live entry; it returns 0
	// (stored), 4 (exists), or the codes of KVPut.
	KVAdd(key, val []byte, ttl time.Duration) int
	KVDelete(key []byte)
}

var (
	nativeMu   sync.Mutex
	nativeHost NativeHost
)

// SetNativeHost installs h (nil: discard everything). For sdktest.
func SetNativeHost(h NativeHost) {
	nativeMu.Lock()
	nativeHost = h
	nativeMu.Unlock()
}

func currentHost() NativeHost {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	return nativeHost
}

func hostLog(level uint32, msg string) {
	if h := currentHost(); h != nil {
		h.Log(int(level), msg)
	}
}

func hostMetric(kind uint32, name string, v float64) {
	if h := currentHost(); h != nil {
		h.Metric(int(kind), name, v)
	}
}

func hostKVGet(key, buf []byte) int {
	h := currentHost()
	if h == nil {
		return -1
	}
	v, ok := h.KVGet(key)
	if !ok {
		return -1
	}
	copy(buf, v)
	return len(v)
}

func hostKVPut(key, val []byte, ttlMillis int64) int {
	h := currentHost()
	if h == nil {
		return 0
	}
	return h.KVPut(key, val, time.Duration(ttlMillis)*time.Millisecond)
}

func hostKVAdd(key, val []byte, ttlMillis int64) int {
	h := currentHost()
	if h == nil {
		return 0
	}
	return h.KVAdd(key, val, time.Duration(ttlMillis)*time.Millisecond)
}

func hostKVDelete(key []byte) {
	if h := currentHost(); h != nil {
		h.KVDelete(key)
	}
}

// NativeOutcome is the fate of one record in a native run.
type NativeOutcome struct {
	// Kind is "pass", "emit", "drop", "retry" or "fail".
	Kind    string
	Outputs []Out
	Code    uint32
	Message string
}

// NativeInit runs the plugin's config decoding and Init. For sdktest.
func NativeInit(config []byte) error { return initPlugin(config) }

// NativeDescribe returns the plugin's self-description JSON. For sdktest.
func NativeDescribe() []byte { return describeJSON() }

// NativeClose runs the plugin's Close. For sdktest.
func NativeClose() { closePlugin() }

// NativeProcess runs the handler over an ABI batch. The outputs' slices
// are valid until the next call. For sdktest.
func NativeProcess(batch []byte) []NativeOutcome {
	state.process(batch)
	res := make([]NativeOutcome, len(state.outcomes))
	kinds := [...]string{"pass", "emit", "drop", "retry", "fail"}
	for i, oc := range state.outcomes {
		res[i] = NativeOutcome{Kind: kinds[oc.kind], Code: oc.code, Message: oc.msg}
		if oc.kind == outcomeEmit {
			res[i].Outputs = append([]Out(nil), state.outs[oc.first:oc.first+oc.n]...)
		}
	}
	return res
}

// ResetForTest forgets the registered plugin, so a test binary can
// register several. For sdktest.
func ResetForTest() { plugin, decoder = nil, nil }
