//go:build !wasip1

// Package sdktest runs a Sluice Go plugin natively, in plain `go test`,
// with no WASM runtime: it encodes records exactly as the host does (ABI
// version 1), runs the registered handler over them and returns each
// record's outcome. Logs, metrics and key-value state go to an in-memory
// host the test can inspect.
//
//	func TestUpper(t *testing.T) {
//		h := sdktest.New(t, `{"field": "name"}`)
//		res := h.Process(sdktest.Event(`{"data": {"name": "ada"}}`))
//		if got := string(res[0].Outputs[0].Payload); got != `{"data": {"name": "ADA"}}` {
//			t.Fatalf("got %s", got)
//		}
//	}
package sdktest

import (
	"encoding/binary"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk"
)

// Input is one record to process.
type Input struct {
	// Payload is what the transform reads; Event the source event (when
	// nil, the payload is the event).
	Payload, Event []byte
	Key            []byte // nil: no key
	Headers        []sdk.Header
	Stream         string
	Partition      int32
	Offset         int64
	Time           time.Time
}

// Event returns an input whose payload is the source event json.
func Event(json string) Input { return Input{Payload: []byte(json)} }

// Outcome is what happened to one input: Kind is "pass", "emit", "drop",
// "retry" or "fail"; Outputs holds the emitted outputs ("emit"), Code and
// Message the failure.
type Outcome = sdk.NativeOutcome

// LogLine is one line the plugin logged.
type LogLine struct {
	Level int
	Msg   string
}

// Host runs the registered plugin and records what it logs, measures and
// stores. It is safe for use by one test at a time (plugins are global).
type Host struct {
	t        testing.TB
	mu       sync.Mutex
	Logs     []LogLine
	Counters map[string]float64
	Gauges   map[string]float64
	kv       map[string]entry
	now      time.Time
}

type entry struct {
	val []byte
	exp time.Time // zero: never
}

func (e entry) live(now time.Time) bool { return e.exp.IsZero() || e.exp.After(now) }

// New installs a fresh in-memory host and initializes the registered
// plugin with config (JSON; "" for none), failing the test if the plugin
// rejects it.
func New(t testing.TB, config string) *Host {
	t.Helper()
	h := Start(t)
	if err := sdk.NativeInit([]byte(config)); err != nil {
		t.Fatalf("plugin rejected config %s: %v", config, err)
	}
	return h
}

// Start installs a fresh in-memory host without initializing the plugin
// (to test Init with Host.Init).
func Start(t testing.TB) *Host {
	h := &Host{t: t, Counters: map[string]float64{}, Gauges: map[string]float64{}, kv: map[string]entry{},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sdk.SetNativeHost(h)
	t.Cleanup(func() {
		sdk.NativeClose()
		sdk.SetNativeHost(nil)
	})
	return h
}

// Init runs the plugin's config decoding and Init with config.
func (h *Host) Init(config string) error { return sdk.NativeInit([]byte(config)) }

// Describe returns the plugin's self-description, decoded.
func (h *Host) Describe() map[string]any {
	var d map[string]any
	if err := json.Unmarshal(sdk.NativeDescribe(), &d); err != nil {
		h.t.Fatalf("describe returned invalid JSON: %v", err)
	}
	return d
}

// Process runs the handler over inputs as one batch. Output slices are
// copied, so they stay valid.
func (h *Host) Process(inputs ...Input) []Outcome {
	res := sdk.NativeProcess(Encode(inputs))
	for i := range res {
		for j := range res[i].Outputs {
			o := &res[i].Outputs[j]
			o.Payload = clone(o.Payload)
			o.Key = clone(o.Key)
			hs := make([]sdk.Header, len(o.Headers))
			for k, hd := range o.Headers {
				hs[k] = sdk.Header{Key: clone(hd.Key), Value: clone(hd.Value)}
			}
			if o.Headers != nil {
				o.Headers = hs
			}
		}
	}
	return res
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// State returns the live value stored under key.
func (h *Host) State(key string) ([]byte, bool) {
	return h.KVGet([]byte(key))
}

// Advance moves the host's clock, which only expires key-value entries
// (their TTLs count on it, not on the wall clock).
func (h *Host) Advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// Log implements sdk.NativeHost.
func (h *Host) Log(level int, msg string) {
	h.mu.Lock()
	h.Logs = append(h.Logs, LogLine{level, msg})
	h.mu.Unlock()
}

// Metric implements sdk.NativeHost.
func (h *Host) Metric(kind int, name string, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch kind {
	case 0:
		h.Counters[name] += v
	case 1:
		h.Gauges[name] = v
	case 2:
		h.Gauges[name] += v
	}
}

// KVGet implements sdk.NativeHost.
func (h *Host) KVGet(key []byte) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.kv[string(key)]
	if !ok || !e.live(h.now) {
		return nil, false
	}
	return e.val, true
}

// KVPut implements sdk.NativeHost. TTLs count on the host's clock
// (Advance).
func (h *Host) KVPut(key, val []byte, ttl time.Duration) int {
	if len(key) > 1<<10 || len(val) > 1<<20 {
		return 2
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kv[string(key)] = h.entry(val, ttl)
	return 0
}

// KVAdd implements sdk.NativeHost.
func (h *Host) KVAdd(key, val []byte, ttl time.Duration) int {
	if len(key) > 1<<10 || len(val) > 1<<20 {
		return 2
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.kv[string(key)]; ok && e.live(h.now) {
		return 4
	}
	h.kv[string(key)] = h.entry(val, ttl)
	return 0
}

func (h *Host) entry(val []byte, ttl time.Duration) entry {
	e := entry{val: clone(val)}
	if e.val == nil {
		e.val = []byte{}
	}
	if ttl > 0 {
		e.exp = h.now.Add(ttl.Truncate(time.Millisecond))
	}
	return e
}

// KVDelete implements sdk.NativeHost.
func (h *Host) KVDelete(key []byte) {
	h.mu.Lock()
	delete(h.kv, string(key))
	h.mu.Unlock()
}

// Encode writes inputs in the ABI version 1 batch layout (docs/abi.md).
func Encode(inputs []Input) []byte {
	le := binary.LittleEndian
	size := 16 + 64*len(inputs)
	for _, in := range inputs {
		size += len(in.Payload) + len(in.Event) + len(in.Key) + len(in.Stream) + 3 + 16*len(in.Headers)
		for _, h := range in.Headers {
			size += len(h.Key) + len(h.Value)
		}
	}
	b := make([]byte, size)
	le.PutUint32(b[0:], sdk.ABIVersion)
	le.PutUint32(b[4:], uint32(len(inputs)))
	le.PutUint32(b[12:], 0xffffffff)
	pos := 16 + 64*len(inputs)
	put := func(data []byte) (uint32, uint32) {
		off := pos
		pos += copy(b[pos:], data)
		return uint32(off), uint32(len(data))
	}
	for i, in := range inputs {
		d := b[16+64*i:]
		var flags uint32
		po, pl := put(in.Payload)
		le.PutUint32(d[0:], po)
		le.PutUint32(d[4:], pl)
		if in.Event == nil {
			flags |= 4
			le.PutUint32(d[56:], po)
			le.PutUint32(d[60:], pl)
		} else {
			eo, el := put(in.Event)
			le.PutUint32(d[56:], eo)
			le.PutUint32(d[60:], el)
		}
		ko, kl := put(in.Key)
		if in.Key != nil {
			flags |= 1
		}
		le.PutUint32(d[8:], ko)
		le.PutUint32(d[12:], kl)
		so, sl := put([]byte(in.Stream))
		le.PutUint32(d[24:], so)
		le.PutUint32(d[28:], sl)
		le.PutUint32(d[32:], uint32(in.Partition))
		le.PutUint64(d[40:], uint64(in.Offset))
		if !in.Time.IsZero() {
			flags |= 2
			le.PutUint64(d[48:], uint64(in.Time.UnixNano()))
		}
		pos = (pos + 3) &^ 3
		table := pos
		pos += 16 * len(in.Headers)
		for j, h := range in.Headers {
			e := b[table+16*j:]
			k0, k1 := put(h.Key)
			v0, v1 := put(h.Value)
			le.PutUint32(e[0:], k0)
			le.PutUint32(e[4:], k1)
			le.PutUint32(e[8:], v0)
			le.PutUint32(e[12:], v1)
		}
		le.PutUint32(d[16:], uint32(table))
		le.PutUint32(d[20:], uint32(len(in.Headers)))
		le.PutUint32(d[36:], flags)
	}
	le.PutUint32(b[8:], uint32(pos))
	return b[:pos]
}
