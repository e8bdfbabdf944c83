// Command dedupe is a Sluice WASM transform that drops events whose key
// was already seen within a time window. The keys live in the host's
// key-value state, so every instance of the transform (a task runs one per
// worker) and every replacement instance sees the same keys, and with
// persist_state they survive restarts (see README.md).
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table (its keys: params).
type Config struct {
	Key       string
	RecordKey bool
	Window    string
	OnMissing string
}

// params declares the config keys and where they go: the SDK decodes them
// without encoding/json or reflect, which would double the module.
var params = []sdk.Param{
	{Name: "key", Into: &cfg.Key, Doc: "path of the field whose value identifies an event, from the payload's root (id, data.order_id); a string counts by its text, other values by their JSON text"},
	{Name: "record_key", Into: &cfg.RecordKey, Doc: "identify events by the record key (the Kafka message key) instead of a field"},
	{Name: "window", Into: &cfg.Window, Required: true, Doc: "how long a key is remembered after the first event that had it (a Go duration: 30s, 10m, 24h)"},
	{Name: "on_missing", Into: &cfg.OnMissing, Doc: "what to do with an event without a key: pass it on, drop it, or fail it (dead-letter queue)"},
}

func defaults() Config { return Config{OnMissing: "pass"} }

var (
	cfg       = defaults()
	keyPath   []string
	window    time.Duration
	onMissing string
	kbuf      []byte
	idbuf     [28]byte
)

// maxKey is the longest key stored as it is; longer ones are stored as
// their SHA-256 (the host takes keys up to 1 KiB).
const maxKey = 512

func setup() error {
	var err error
	switch {
	case cfg.RecordKey && cfg.Key != "":
		return errors.New("key and record_key: set one, not both")
	case !cfg.RecordKey && cfg.Key == "":
		return errors.New("key: name the field that identifies an event (or set record_key = true)")
	case !cfg.RecordKey:
		if keyPath, err = field.MustNotBeRoot("key", cfg.Key); err != nil {
			return err
		}
	}
	if window, err = time.ParseDuration(cfg.Window); err != nil || window < time.Millisecond {
		return errors.New("window: " + strconv.Quote(cfg.Window) + " is not a duration of at least 1ms (use 30s, 10m, 24h)")
	}
	if onMissing, err = field.Choice("on_missing", cfg.OnMissing, "pass", "drop", "fail"); err != nil {
		return err
	}
	return nil
}

// key returns the state key of r, or nil when it has none.
func key(r *sdk.Record) []byte {
	var k []byte
	if cfg.RecordKey {
		rk, ok := r.Key()
		if !ok || len(rk) == 0 {
			return nil
		}
		k = rk
	} else {
		v, ok := jsonfield.Get(r.Payload(), keyPath...)
		if !ok || jsonfield.KindOf(v) == jsonfield.Null {
			return nil
		}
		k = v
		if jsonfield.KindOf(v) == jsonfield.String {
			if k, ok = jsonfield.Unquote(kbuf[:0], v); !ok {
				k = v
			}
		}
	}
	if len(k) > maxKey {
		sum := sha256.Sum256(k)
		k = append(append(kbuf[:0], "sha256:"...), sum[:]...)
	}
	return k
}

// identity names the record itself: its position (stream, partition,
// offset) and a hash of its payload. The host re-runs records when it
// isolates a failing one, and sources redeliver after a crash; a record
// that finds its own identity under its key is that same record again,
// and passes, so that no event is lost to its own earlier attempt.
func identity(r *sdk.Record) []byte {
	h := fnv.New64a()
	h.Write(r.Stream())
	put64(idbuf[0:], h.Sum64())
	put32(idbuf[8:], uint32(r.Partition()))
	put64(idbuf[12:], uint64(r.Offset()))
	h.Reset()
	h.Write(r.Payload())
	put64(idbuf[20:], h.Sum64())
	return idbuf[:]
}

// put64 and put32 write v little-endian (encoding/binary's layout,
// without the package and the reflect it imports).
func put64(b []byte, v uint64) {
	put32(b, uint32(v))
	put32(b[4:], uint32(v>>32))
}

func put32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func filter(r *sdk.Record) (bool, error) {
	k := key(r)
	if k == nil {
		switch onMissing {
		case "pass":
			return true, nil
		case "fail":
			if cfg.RecordKey {
				return false, errors.New("dedupe: the record has no key")
			}
			return false, errors.New("dedupe: key " + cfg.Key + " is absent")
		}
		return false, nil
	}
	id := identity(r)
	// Claim the key; if another record holds it, this one is a duplicate
	// unless it is that record again. An entry that expires between the
	// two calls is claimed on the next round.
	for range 3 {
		added, err := sdk.State.Add(k, id, window)
		if err != nil {
			return false, sdk.Retry(errors.New("dedupe: " + err.Error()))
		}
		if added {
			return true, nil
		}
		holder, ok := sdk.State.Get(k)
		if !ok {
			continue
		}
		if bytes.Equal(holder, id) {
			return true, nil
		}
		sdk.CounterAdd("duplicates_dropped", 1)
		return false, nil
	}
	return false, sdk.Retry(errors.New("dedupe: the state of key " + strconv.Quote(string(k)) + " keeps changing"))
}

func init() {
	sdk.Register(sdk.Plugin{
		Name:    "dedupe",
		Version: "1.0.0",
		Summary: "drops events whose key was seen within a time window (state shared by all instances)",
		Params:  params,
		Init:    setup,
		Handler: sdk.FilterFunc(filter),
	})
}

func main() {}
