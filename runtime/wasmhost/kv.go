package wasmhost

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/metrics"

	"github.com/sluicehq/sluice/runtime/statedir"
)

// Limits of the key-value state.
const (
	MaxKVKey   = 1 << 10
	MaxKVValue = 1 << 20
	// DefaultKVEntries is the entry cap when none is configured.
	DefaultKVEntries = 1 << 20
	// DefaultKVBytes is the byte quota when none is configured: twice the
	// default memory limit of an instance.
	DefaultKVBytes = 64 << 20
	// KVEntryOverhead is what one entry costs the host beyond its key and
	// value (map slot, string and slice headers, expiry), counted in the
	// byte quota so that a million empty entries are not free.
	KVEntryOverhead = 64
)

// KVQuota bounds a store. The state lives in host memory, outside the
// module's memory_limit, so it needs a limit of its own.
type KVQuota struct {
	// Keys caps the entries (0: DefaultKVEntries).
	Keys int
	// Bytes caps the keys, values and KVEntryOverhead per entry (0:
	// DefaultKVBytes).
	Bytes int64
}

// KV is the key-value state of one transform: shared by all its instances,
// so it survives instance replacement, and optionally saved to a file. It
// is safe for concurrent use.
type KV struct {
	mu         sync.Mutex
	m          map[string]kvEntry
	maxEntries int
	maxBytes   int64
	bytes      int64 // cost of the entries in m, expired ones included until swept
	puts       int
	now        func() time.Time

	// Gauges of the store's size and a counter of refused writes (nil:
	// not exported), set by Observe.
	keysGauge, bytesGauge metrics.Gauge
	refused               metrics.Counter
}

type kvEntry struct {
	val []byte
	exp int64 // unix ns; 0: never
}

// cost is what an entry holding key and val counts against the quota: the
// value's capacity, since a value shrunk in place keeps its memory.
func cost(key string, val []byte) int64 {
	return int64(len(key)) + int64(cap(val)) + KVEntryOverhead
}

// NewKV returns an empty store holding at most maxEntries (0: the default)
// and the default byte quota.
func NewKV(maxEntries int) *KV { return NewKVQuota(KVQuota{Keys: maxEntries}) }

// NewKVQuota returns an empty store bounded by q.
func NewKVQuota(q KVQuota) *KV {
	if q.Keys <= 0 {
		q.Keys = DefaultKVEntries
	}
	if q.Bytes <= 0 {
		q.Bytes = DefaultKVBytes
	}
	return &KV{m: map[string]kvEntry{}, maxEntries: q.Keys, maxBytes: q.Bytes, now: time.Now}
}

// Quota returns the store's bounds.
func (kv *KV) Quota() KVQuota { return KVQuota{Keys: kv.maxEntries, Bytes: kv.maxBytes} }

// Observe makes the store export its entries and bytes to the gauges and
// count refused writes (KVFull) in refused. Any may be nil.
func (kv *KV) Observe(keys, bytes metrics.Gauge, refused metrics.Counter) {
	kv.mu.Lock()
	kv.keysGauge, kv.bytesGauge, kv.refused = keys, bytes, refused
	kv.changed()
	kv.mu.Unlock()
}

// changed publishes the size; called with kv.mu held.
func (kv *KV) changed() {
	if kv.keysGauge != (metrics.Gauge{}) {
		kv.keysGauge.Set(float64(len(kv.m)))
	}
	if kv.bytesGauge != (metrics.Gauge{}) {
		kv.bytesGauge.Set(float64(kv.bytes))
	}
}

// Size returns the entries (live and not yet swept) and their cost in
// bytes as the quota counts it.
func (kv *KV) Size() (keys int, bytes int64) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return len(kv.m), kv.bytes
}

// Get returns a copy of the value of key.
func (kv *KV) Get(key []byte) ([]byte, bool) {
	var out []byte
	found := false
	kv.getInto(key, func(v []byte) bool {
		out, found = append([]byte{}, v...), true
		return true
	})
	return out, found
}

// getInto hands the value of key to fill (under the lock) and returns its
// length, or KVMissing.
func (kv *KV) getInto(key []byte, fill func([]byte) bool) int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	e, ok := kv.m[string(key)]
	if !ok {
		return KVMissing
	}
	if e.exp != 0 && e.exp <= kv.now().UnixNano() {
		kv.remove(string(key), e)
		kv.changed()
		return KVMissing
	}
	fill(e.val)
	return len(e.val)
}

// Put stores a copy of val under key; ttl <= 0 keeps it until deleted, and
// a ttl that ends past the range of a time (year 2262) ends there. It
// returns KVOK, KVFull (the quota of keys or bytes is reached) or
// KVTooLarge.
func (kv *KV) Put(key, val []byte, ttl time.Duration) int {
	if len(key) > MaxKVKey || len(val) > MaxKVValue {
		return KVTooLarge
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.store(key, val, ttl, kv.now().UnixNano())
}

// Add stores a copy of val under key only when key holds no live entry:
// an atomic "put if absent", so that instances running at once agree on
// which of them claimed a key. It returns KVOK (stored), KVExists (a live
// entry is there; nothing changed), KVFull or KVTooLarge.
func (kv *KV) Add(key, val []byte, ttl time.Duration) int {
	if len(key) > MaxKVKey || len(val) > MaxKVValue {
		return KVTooLarge
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	now := kv.now().UnixNano()
	if e, ok := kv.m[string(key)]; ok && (e.exp == 0 || e.exp > now) {
		return KVExists
	}
	return kv.store(key, val, ttl, now)
}

// store puts a copy of val under key within the quota; called with kv.mu
// held.
func (kv *KV) store(key, val []byte, ttl time.Duration, now int64) int {
	kv.puts++
	e, exists := kv.m[string(key)]
	// A value is rewritten in place when it fits and would not waste more
	// than it holds; otherwise it gets a buffer of its own size.
	reuse := exists && len(val) <= cap(e.val) && cap(e.val) <= 2*len(val)+64
	var old, next int64
	if exists {
		old = cost(string(key), e.val)
	}
	if reuse {
		next = old
	} else {
		next = int64(len(key)) + int64(len(val)) + KVEntryOverhead
	}
	over := func() bool {
		return (!exists && len(kv.m) >= kv.maxEntries) || kv.bytes-old+next > kv.maxBytes
	}
	if kv.puts%4096 == 0 || over() {
		kv.sweep(now)
		e, exists = kv.m[string(key)]
		if !exists {
			old = 0
			reuse = false
			next = int64(len(key)) + int64(len(val)) + KVEntryOverhead
		}
	}
	if over() {
		if kv.refused != (metrics.Counter{}) {
			kv.refused.Inc()
		}
		kv.changed()
		return KVFull
	}
	if reuse {
		e.val = append(e.val[:0], val...)
	} else {
		e.val = append(make([]byte, 0, len(val)), val...)
	}
	e.exp = 0
	if ttl > 0 {
		e.exp = now + int64(ttl)
		if e.exp < now {
			// Past the range of a time (year 2262): the last one, never
			// in practice. The sum wrapped into the past, which expired
			// the entry at once.
			e.exp = math.MaxInt64
		}
	}
	kv.m[string(key)] = e
	kv.bytes += cost(string(key), e.val) - old
	kv.changed()
	return KVOK
}

// remove deletes key, whose entry is e; called with kv.mu held.
func (kv *KV) remove(key string, e kvEntry) {
	delete(kv.m, key)
	kv.bytes -= cost(key, e.val)
}

// Delete removes key.
func (kv *KV) Delete(key []byte) {
	kv.mu.Lock()
	if e, ok := kv.m[string(key)]; ok {
		kv.remove(string(key), e)
		kv.changed()
	}
	kv.mu.Unlock()
}

// Len returns the number of live and not yet swept entries.
func (kv *KV) Len() int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return len(kv.m)
}

func (kv *KV) sweep(now int64) {
	for k, e := range kv.m {
		if e.exp != 0 && e.exp <= now {
			kv.remove(k, e)
		}
	}
}

// File format of a saved store: the magic line, then per entry
// u32 key length, key, u32 value length, value, i64 expiry (unix ns, 0:
// none), all little-endian.
var kvMagic = []byte("SLUICEKV1\n")

// Save writes the live entries to path atomically.
func (kv *KV) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), statedir.DirMode); err != nil {
		return fmt.Errorf("save wasm state: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save wasm state: %w", err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	w.Write(kvMagic)
	kv.mu.Lock()
	now := kv.now().UnixNano()
	var n [8]byte
	for k, e := range kv.m {
		if e.exp != 0 && e.exp <= now {
			continue
		}
		binary.LittleEndian.PutUint32(n[:4], uint32(len(k)))
		w.Write(n[:4])
		w.WriteString(k)
		binary.LittleEndian.PutUint32(n[:4], uint32(len(e.val)))
		w.Write(n[:4])
		w.Write(e.val)
		binary.LittleEndian.PutUint64(n[:], uint64(e.exp))
		w.Write(n[:])
	}
	kv.mu.Unlock()
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("save wasm state %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save wasm state %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save wasm state %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save wasm state %s: %w", path, err)
	}
	return nil
}

// Load replaces the store's entries with those saved at path. A missing
// file is an empty store.
func (kv *KV) Load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load wasm state: %w", err)
	}
	defer f.Close()
	m, bytes, err := readKV(bufio.NewReader(f), kv.maxEntries, kv.maxBytes)
	if err != nil {
		return fmt.Errorf("load wasm state %s: %w (raise state_max_keys or state_max_bytes, or move the file away to start with empty state)", path, err)
	}
	kv.mu.Lock()
	kv.m, kv.bytes = m, bytes
	kv.changed()
	kv.mu.Unlock()
	return nil
}

func readKV(r io.Reader, maxEntries int, maxBytes int64) (map[string]kvEntry, int64, error) {
	m, err := readEntries(r, maxEntries, maxBytes)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	for k, e := range m {
		total += cost(k, e.val)
	}
	if total > maxBytes {
		return nil, 0, fmt.Errorf("its %d entries take %d bytes, more than the quota of %d", len(m), total, maxBytes)
	}
	return m, total, nil
}

// readEntries reads the entries of a state file, refusing it as soon as
// they pass maxEntries or maxBytes (counted as cost counts them, before the
// bytes are allocated): a file over the quota was read whole into memory,
// up to a TiB with the default limits, only to be refused (review). A
// duplicate key, which the writer never makes, only counts twice.
func readEntries(r io.Reader, maxEntries int, maxBytes int64) (map[string]kvEntry, error) {
	magic := make([]byte, len(kvMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != string(kvMagic) {
		return nil, errors.New("not a Sluice state file (bad header)")
	}
	m := map[string]kvEntry{}
	var n [8]byte
	var total int64
	overQuota := func(i int) error {
		return fmt.Errorf("its entries take more than the quota of %d bytes (at entry %d)", maxBytes, i)
	}
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, n[:4]); err == io.EOF {
			return m, nil
		} else if err != nil {
			return nil, fmt.Errorf("entry %d: truncated", i)
		}
		if i >= maxEntries {
			return nil, fmt.Errorf("more than %d entries", maxEntries)
		}
		kl := binary.LittleEndian.Uint32(n[:4])
		if kl > MaxKVKey {
			return nil, fmt.Errorf("entry %d: key of %d bytes exceeds %d", i, kl, MaxKVKey)
		}
		if total += int64(kl) + KVEntryOverhead; total > maxBytes {
			return nil, overQuota(i)
		}
		key := make([]byte, kl)
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, fmt.Errorf("entry %d: truncated key", i)
		}
		if _, err := io.ReadFull(r, n[:4]); err != nil {
			return nil, fmt.Errorf("entry %d: truncated", i)
		}
		vl := binary.LittleEndian.Uint32(n[:4])
		if vl > MaxKVValue {
			return nil, fmt.Errorf("entry %d: value of %d bytes exceeds %d", i, vl, MaxKVValue)
		}
		if total += int64(vl); total > maxBytes {
			return nil, overQuota(i)
		}
		val := make([]byte, vl)
		if _, err := io.ReadFull(r, val); err != nil {
			return nil, fmt.Errorf("entry %d: truncated value", i)
		}
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, fmt.Errorf("entry %d: truncated expiry", i)
		}
		m[string(key)] = kvEntry{val: val, exp: int64(binary.LittleEndian.Uint64(n[:]))}
	}
}
