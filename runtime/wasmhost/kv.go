package wasmhost

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/statedir"
)

// Limits of the key-value state.
const (
	MaxKVKey   = 1 << 10
	MaxKVValue = 1 << 20
	// DefaultKVEntries is the entry cap when none is configured.
	DefaultKVEntries = 1 << 20
)

// KV is the key-value state of one transform: shared by all its instances,
// so it survives instance replacement, and optionally saved to a file. It
// is safe for concurrent use.
type KV struct {
	mu         sync.Mutex
	m          map[string]kvEntry
	maxEntries int
	puts       int
	now        func() time.Time
}

type kvEntry struct {
	val []byte
	exp int64 // unix ns; 0: never
}

// NewKV returns an empty store holding at most maxEntries (0: the default).
func NewKV(maxEntries int) *KV {
	if maxEntries <= 0 {
		maxEntries = DefaultKVEntries
	}
	return &KV{m: map[string]kvEntry{}, maxEntries: maxEntries, now: time.Now}
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
		delete(kv.m, string(key))
		return KVMissing
	}
	fill(e.val)
	return len(e.val)
}

// Put stores a copy of val under key; ttl <= 0 keeps it until deleted. It
// returns KVOK, KVFull or KVTooLarge.
func (kv *KV) Put(key, val []byte, ttl time.Duration) int {
	if len(key) > MaxKVKey || len(val) > MaxKVValue {
		return KVTooLarge
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	now := kv.now().UnixNano()
	kv.puts++
	if kv.puts%4096 == 0 || len(kv.m) >= kv.maxEntries {
		kv.sweep(now)
	}
	e, exists := kv.m[string(key)]
	if !exists && len(kv.m) >= kv.maxEntries {
		return KVFull
	}
	e.val = append(e.val[:0], val...)
	e.exp = 0
	if ttl > 0 {
		e.exp = now + int64(ttl)
	}
	kv.m[string(key)] = e
	return KVOK
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
	kv.puts++
	if kv.puts%4096 == 0 || len(kv.m) >= kv.maxEntries {
		kv.sweep(now)
	}
	e, exists := kv.m[string(key)]
	if !exists && len(kv.m) >= kv.maxEntries {
		return KVFull
	}
	e.val = append(e.val[:0], val...)
	e.exp = 0
	if ttl > 0 {
		e.exp = now + int64(ttl)
	}
	kv.m[string(key)] = e
	return KVOK
}

// Delete removes key.
func (kv *KV) Delete(key []byte) {
	kv.mu.Lock()
	delete(kv.m, string(key))
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
			delete(kv.m, k)
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
	m, err := readKV(bufio.NewReader(f), kv.maxEntries)
	if err != nil {
		return fmt.Errorf("load wasm state %s: %w (move the file away to start with empty state)", path, err)
	}
	kv.mu.Lock()
	kv.m = m
	kv.mu.Unlock()
	return nil
}

func readKV(r io.Reader, maxEntries int) (map[string]kvEntry, error) {
	magic := make([]byte, len(kvMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != string(kvMagic) {
		return nil, errors.New("not a Sluice state file (bad header)")
	}
	m := map[string]kvEntry{}
	var n [8]byte
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
