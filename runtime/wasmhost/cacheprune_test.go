package wasmhost

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestPruneCache: entries of wazero's and the host's folders unused for
// cacheMaxAge go, whatever their version; recent ones, and anything that
// is not the cache's, stay.
func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-cacheMaxAge - time.Hour)
	recent := now.Add(-cacheMaxAge + time.Hour)
	files := map[string]time.Time{
		"wazero-v1.12.0-amd64-linux/stale":   old,
		"wazero-v1.12.0-amd64-linux/in-use":  recent,
		"wazero-v1.11.0-amd64-linux/earlier": old,
		"sluice-rw5/stale.wasm":              old,
		"sluice-rw5/in-use.wasm":             recent,
		"sluice-rw4/earlier.wasm":            old,
		"sluice-code1/stale.code":            old,
		"sluice-code1/.code-123":             old, // a write cut short
		"sluice-code1/in-use.code":           recent,
		"someone-elses/old":                  old,
		"top-level-file":                     old,
	}
	for name, at := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	// Read recently, written long ago: in use where atime is kept.
	readOnly := filepath.Join(dir, "wazero-v1.12.0-amd64-linux/read-recently")
	if err := os.WriteFile(readOnly, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(readOnly, recent, old); err != nil {
		t.Fatal(err)
	}

	if n := pruneCache(dir, now); n != 6 {
		t.Errorf("removed %d files, want 6", n)
	}
	for name, at := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		keep := at.Equal(recent) || name == "someone-elses/old" || name == "top-level-file"
		if keep && err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
		if !keep && err == nil {
			t.Errorf("%s kept", name)
		}
	}
	if _, err := os.Stat(readOnly); err != nil && accessTimeKept() {
		t.Errorf("an entry read recently was removed: %v", err)
	}
}

// accessTimeKept reports whether lastUse reads access times here.
func accessTimeKept() bool {
	info, err := os.Stat(os.Args[0])
	if err != nil {
		return false
	}
	_, ok := accessTime(info)
	return ok
}

// TestCacheFilesTouched: a load that uses the host's cached files marks
// them used, so pruning keeps what runs.
func TestCacheFilesTouched(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	load := func() *Host {
		h, err := New(ctx, Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Load(ctx, "m", wasm, LoadOptions{MemoryLimit: 32 << 20}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := load()
	key := modKey{sum: sha256.Sum256(wasm), pages: 512}
	paths := []string{rewrittenPath(dir, key)}
	h.Close(ctx)
	long := time.Now().Add(-cacheMaxAge / 2)
	for _, p := range paths {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	load().Close(ctx)
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !info.ModTime().After(long.Add(time.Hour)) {
			t.Errorf("%s not marked used by the second load (modified %v)", filepath.Base(filepath.Dir(p)), info.ModTime())
		}
	}
}
