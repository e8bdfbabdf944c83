package wasmhost

import (
	"path/filepath"
	"runtime"
	"testing"
)

// TestKVLoadRefusesBeforeReadingPastTheQuota: a saved store larger than
// the quota is refused at start without reading it whole. Load read every
// entry into memory before it compared the total with state_max_bytes, so
// the refusal cost the host the whole file in heap (review).
func TestKVLoadRefusesBeforeReadingPastTheQuota(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.kv")
	big := NewKVQuota(KVQuota{Bytes: 1 << 30})
	val := make([]byte, MaxKVValue)
	for i := range 48 {
		if r := big.Put([]byte{byte(i)}, val, 0); r != KVOK {
			t.Fatalf("put %d: %d", i, r)
		}
	}
	if err := big.Save(path); err != nil {
		t.Fatal(err)
	}
	big = nil

	small := NewKVQuota(KVQuota{Bytes: 1 << 10})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := small.Load(path)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a 48 MiB store loaded under a 1 KiB quota")
	}
	t.Logf("refused: %v", err)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 4<<20 {
		t.Fatalf("refusing a state file over a 1 KiB quota allocated %d MiB (the whole file) before the quota check", alloc>>20)
	}
}
