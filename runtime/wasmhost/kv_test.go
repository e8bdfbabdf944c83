package wasmhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestKV(t *testing.T) {
	kv := NewKV(2)
	now := time.Unix(100, 0)
	kv.now = func() time.Time { return now }
	if kv.Put([]byte("a"), []byte("1"), 0) != KVOK || kv.Put([]byte("b"), []byte("2"), time.Second) != KVOK {
		t.Fatal("put")
	}
	if kv.Put([]byte("c"), []byte("3"), 0) != KVFull {
		t.Error("store over its cap")
	}
	if v, ok := kv.Get([]byte("b")); !ok || string(v) != "2" {
		t.Errorf("b = %q %v", v, ok)
	}
	now = now.Add(2 * time.Second)
	if _, ok := kv.Get([]byte("b")); ok {
		t.Error("b did not expire")
	}
	if kv.Put([]byte("c"), []byte("3"), 0) != KVOK {
		t.Error("expired entry not reclaimed")
	}
	if kv.Put(bytes.Repeat([]byte("k"), MaxKVKey+1), nil, 0) != KVTooLarge {
		t.Error("key limit")
	}
	path := filepath.Join(t.TempDir(), "s", "state.kv")
	if err := kv.Save(path); err != nil {
		t.Fatal(err)
	}
	kv2 := NewKV(0)
	if err := kv2.Load(path); err != nil {
		t.Fatal(err)
	}
	if v, ok := kv2.Get([]byte("c")); !ok || string(v) != "3" || kv2.Len() != 2 {
		t.Errorf("loaded c = %q %v, %d entries", v, ok, kv2.Len())
	}
	kv2.Delete([]byte("c"))
	if _, ok := kv2.Get([]byte("c")); ok {
		t.Error("delete")
	}
	if err := NewKV(0).Load(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("missing file: %v", err)
	}
}

func TestKVAdd(t *testing.T) {
	kv := NewKV(2)
	now := time.Unix(100, 0)
	kv.now = func() time.Time { return now }
	if got := kv.Add([]byte("a"), []byte("first"), time.Second); got != KVOK {
		t.Fatalf("add to an empty store = %d", got)
	}
	if got := kv.Add([]byte("a"), []byte("second"), time.Second); got != KVExists {
		t.Fatalf("add over a live entry = %d, want KVExists", got)
	}
	if v, _ := kv.Get([]byte("a")); string(v) != "first" {
		t.Errorf("a = %q after a refused add", v)
	}
	now = now.Add(2 * time.Second)
	if got := kv.Add([]byte("a"), []byte("third"), 0); got != KVOK {
		t.Fatalf("add over an expired entry = %d", got)
	}
	if v, _ := kv.Get([]byte("a")); string(v) != "third" {
		t.Errorf("a = %q", v)
	}
	kv.Put([]byte("b"), nil, 0)
	if got := kv.Add([]byte("c"), nil, 0); got != KVFull {
		t.Errorf("add to a full store = %d", got)
	}
	if got := kv.Add(bytes.Repeat([]byte("k"), MaxKVKey+1), nil, 0); got != KVTooLarge {
		t.Errorf("add of a long key = %d", got)
	}
}

// TestKVAddConcurrent checks that of many writers adding one key at once,
// exactly one wins.
func TestKVAddConcurrent(t *testing.T) {
	kv := NewKV(0)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 1000 {
				if kv.Add([]byte(strconv.Itoa(k)), []byte{byte(i)}, time.Minute) == KVOK {
					wins.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1000 {
		t.Errorf("%d adds won for 1000 keys", wins.Load())
	}
}

// FuzzReadKV checks that a corrupt state file is an error, never a panic
// or a huge allocation.
func FuzzReadKV(f *testing.F) {
	f.Add(append(append([]byte{}, kvMagic...), 1, 0, 0, 0, 'k', 1, 0, 0, 0, 'v', 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte("SLUICEKV1\n\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		readKV(bytes.NewReader(b), 1000, 1<<20)
	})
}

func TestRewriteCache(t *testing.T) {
	dir := t.TempDir()
	h := &Host{dir: dir}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	key := modKey{pages: 16}
	reads := 0
	read := func() ([]byte, error) { reads++; return wasm, nil }
	first, _, err := h.rewrite(key, read)
	if err != nil {
		t.Fatal(err)
	}
	second, mapped, err := h.rewrite(key, read)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Module, second.Module) || first.Funcs != second.Funcs {
		t.Errorf("cached rewrite differs: %+v vs %+v", first, second)
	}
	if want := runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64"); (mapped != nil) != want {
		t.Errorf("the rewritten module from the cache mapped: %v, want %v", mapped != nil, want)
	}
	if mapped != nil {
		unmapFile(mapped)
	}
	if reads != 1 {
		t.Errorf("the original module was read %d times, want once: the second rewrite comes from the cache", reads)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "sluice-"+rewriteVersion, "*.wasm"))
	if len(matches) != 1 {
		t.Errorf("cache files: %v", matches)
	}
}

// The byte quota counts keys, values (their capacity) and a fixed cost per
// entry; a put past it is refused, replacing a value by a smaller one is
// always possible, deletes and expiry give room back, and a saved store
// larger than the quota is refused at load.
func TestKVByteQuota(t *testing.T) {
	const quota = 10 * (KVEntryOverhead + 1 + 100)
	kv := NewKVQuota(KVQuota{Bytes: quota})
	now := time.Unix(100, 0)
	kv.now = func() time.Time { return now }
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 10 {
		if got := kv.Put([]byte{byte('a' + i)}, val, 0); got != KVOK {
			t.Fatalf("put %d: %d", i, got)
		}
	}
	if keys, b := kv.Size(); keys != 10 || b != quota {
		t.Fatalf("size = %d keys, %d bytes; want 10, %d", keys, b, quota)
	}
	if got := kv.Put([]byte("z"), nil, 0); got != KVFull {
		t.Errorf("put past the byte quota: %d, want KVFull", got)
	}
	if got := kv.Add([]byte("z"), nil, 0); got != KVFull {
		t.Errorf("add past the byte quota: %d, want KVFull", got)
	}
	if got := kv.Put([]byte("a"), append(val, 'x'), 0); got != KVFull {
		t.Errorf("growing a value past the quota: %d, want KVFull", got)
	}
	// Shrinking a value far below its buffer gives the buffer back.
	if got := kv.Put([]byte("a"), []byte("1"), 0); got != KVOK {
		t.Errorf("shrink: %d", got)
	}
	if _, b := kv.Size(); b >= quota-90 {
		t.Errorf("after shrinking a value, %d bytes counted", b)
	}
	kv.Delete([]byte("b"))
	if got := kv.Put([]byte("z"), val, time.Second); got != KVOK {
		t.Errorf("put after a delete: %d", got)
	}
	if got := kv.Put([]byte("y"), val, 0); got != KVFull {
		t.Errorf("put past the quota again: %d", got)
	}
	now = now.Add(2 * time.Second) // z expires: its room comes back
	if got := kv.Put([]byte("y"), val, 0); got != KVOK {
		t.Errorf("put after an expiry: %d", got)
	}
	path := filepath.Join(t.TempDir(), "state.kv")
	if err := kv.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := NewKVQuota(KVQuota{Bytes: quota / 2}).Load(path); err == nil || !strings.Contains(err.Error(), "more than the quota") {
		t.Errorf("load into a smaller quota: %v", err)
	}
	kv2 := NewKVQuota(KVQuota{Bytes: quota})
	if err := kv2.Load(path); err != nil {
		t.Fatal(err)
	}
	if k1, b1 := kv.Size(); true {
		if k2, b2 := kv2.Size(); k1 != k2 || b1 != b2 {
			t.Errorf("loaded size %d/%d, saved %d/%d", k2, b2, k1, b1)
		}
	}
}

// A guest's output becomes log lines of at most maxLine bytes, however it
// writes them.
func TestLineWriter(t *testing.T) {
	var logs bytes.Buffer
	w := &lineWriter{log: zerolog.New(&logs), stream: "stdout"}
	long := strings.Repeat("x", 2*maxLine+100)
	w.Write([]byte("a\nb"))
	w.Write([]byte("b\n" + long))
	w.Write([]byte("\n" + long + "z\n"))
	w.Write([]byte(strings.Repeat("y", 3*hostChunk+5) + "\n"))
	w.flush()
	var got []int
	var first []string
	dec := json.NewDecoder(&logs)
	for {
		var line struct{ Message string }
		if err := dec.Decode(&line); err != nil {
			break
		}
		got = append(got, len(line.Message))
		if len(first) < 2 {
			first = append(first, line.Message)
		}
	}
	want := []int{1, 2, maxLine, maxLine, 100, maxLine, maxLine, 101}
	for n := 3*hostChunk + 5; n > 0; n -= maxLine {
		want = append(want, min(n, maxLine))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || first[0] != "a" || first[1] != "bb" {
		t.Errorf("line lengths %v, want %v (first lines %q)", got, want, first)
	}
}

// A TTL whose end is past the range of a time (Go's largest
// time.Duration, "practically forever") keeps the entry: now+ttl wrapped
// into the past and expired it at once. Saved and loaded, it stays.
func TestKVLongTTL(t *testing.T) {
	kv := NewKV(0)
	now := time.Unix(1_700_000_000, 0)
	kv.now = func() time.Time { return now }
	for _, ttl := range []time.Duration{math.MaxInt64, time.Duration(9223372036854) * time.Millisecond, 250 * 365 * 24 * time.Hour} {
		key := []byte(ttl.String())
		if res := kv.Put(key, []byte("v"), ttl); res != KVOK {
			t.Fatalf("put %v: %d", ttl, res)
		}
		if res := kv.Add(append(key, '+'), []byte("v"), ttl); res != KVOK {
			t.Fatalf("add %v: %d", ttl, res)
		}
	}
	now = now.AddDate(200, 0, 0)
	path := filepath.Join(t.TempDir(), "state.kv")
	if err := kv.Save(path); err != nil {
		t.Fatal(err)
	}
	kv2 := NewKV(0)
	kv2.now = kv.now
	if err := kv2.Load(path); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*KV{kv, kv2} {
		if n := s.Len(); n != 6 {
			t.Errorf("%d entries of 6 left 200 years later", n)
		}
	}
}

// kv_put's and kv_add's ttl_ms times a millisecond overflows past 292
// years; 2^58+1 ms wrapped to a TTL of 1 ms.
func TestKVTTLOfImport(t *testing.T) {
	const most = math.MaxInt64 / int64(time.Millisecond)
	for ms, want := range map[int64]time.Duration{
		0: 0, -5: 0, math.MinInt64: 0, 1: time.Millisecond, 1500: 1500 * time.Millisecond,
		most: time.Duration(most) * time.Millisecond, most + 1: math.MaxInt64, 1<<58 + 1: math.MaxInt64, math.MaxInt64: math.MaxInt64,
	} {
		if got := kvTTL(uint64(ms)); got != want {
			t.Errorf("ttl_ms %d: %v, want %v", ms, got, want)
		}
	}
}
