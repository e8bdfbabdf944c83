//go:build linux && (amd64 || arm64)

package wasmhost_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// cacheEntry is the one entry of wazero's cache in dir: its path and
// bytes.
func cacheEntry(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	entries, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if len(entries) != 1 {
		t.Fatalf("cache entries: %v, want one", entries)
	}
	b, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	return entries[0], b
}

// replaceEntry puts b in place of the entry at path as a new file, as a
// damaged disk would show it (one changed in place would change the code
// a process maps, which is why the folder must be Sluice's alone).
func replaceEntry(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".damaged", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".damaged", path); err != nil {
		t.Fatal(err)
	}
}

// mapsOfInode lists the lines of /proc/self/maps that map inode ino.
func mapsOfInode(t *testing.T, ino uint64) []string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			if n, _ := strconv.ParseUint(fields[4], 10, 64); n == ino {
				out = append(out, sc.Text())
			}
		}
	}
	return out
}

// A cache entry damaged after its code (here cut short by one byte, in
// its catch-clause table) maps the code, checks its checksum, then fails
// on what follows. The code must be unmapped then: the entry is deleted
// and replaced, and a mapping left behind (with the deleted file's blocks)
// would stay for the life of the process (found by review).
func TestDamagedEntryUnmapped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := manyFunctions(300)
	compile := func() {
		rt := cachedCompiler(ctx, t, dir)
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			t.Fatal(err)
		}
		rt.Close(ctx)
	}
	compile()
	path, b := cacheEntry(t, dir)
	replaceEntry(t, path, b[:len(b)-1])
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := st.Sys().(*syscall.Stat_t).Ino

	compile() // finds the damaged entry: unmaps it, compiles again, replaces it
	// The new entry may reuse the damaged one's inode number: only a
	// mapping of the deleted file counts.
	var leaked []string
	for _, l := range mapsOfInode(t, damaged) {
		if strings.HasSuffix(l, " (deleted)") {
			leaked = append(leaked, l)
		}
	}
	if m := leaked; len(m) > 0 {
		t.Fatalf("the damaged entry (inode %d, deleted) is still mapped, by nothing:\n%s", damaged, strings.Join(m, "\n"))
	}
}

// A damaged entry is compiled again and replaced, and a cache that cannot
// be written costs the next start a compilation; together, in a cache
// folder that is read-only (here a read-only remount), the load used to
// fail for good with the error of removing the entry (found by review).
func TestDamagedEntryInReadOnlyCache(t *testing.T) {
	dir := testkit.Tmpfs(t, 64<<20)
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	ctx := context.Background()
	h1, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h1.Load(ctx, "code", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); err != nil {
		t.Fatal(err)
	}
	h1.Close(ctx)
	path, b := cacheEntry(t, dir)
	b[64<<10+16] ^= 0xff // in the code (at 64 KiB): its checksum fails
	replaceEntry(t, path, b)
	// The same folder through a read-only bind mount (a remount of the
	// tmpfs itself would wait for what still maps its files).
	ro := t.TempDir()
	if err := syscall.Mount(dir, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on %s: %v", dir, ro, err) // Tmpfs above needed the same right
	}
	t.Cleanup(func() { _ = syscall.Unmount(ro, syscall.MNT_DETACH) })
	if err := syscall.Mount("", ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("make the bind mount %s read-only: %v", ro, err)
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o600); err == nil {
		t.Fatal("the read-only bind mount took a write")
	}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: ro})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, "code", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
	if err != nil {
		t.Fatalf("a damaged entry in a read-only cache fails the load: %v", err)
	}
	if got := runOnce(t, m, []byte(`{"a":1}`)); string(got) != `{"a":1}` {
		t.Fatalf("got %q", got)
	}
}

// A damaged entry is compiled again and replaced, whatever part is
// damaged: the code's checksum left the function offsets, the source map
// and the catch-clause table unchecked, and an entry whose offset of one
// function was changed (here to another function's) loaded and ran the
// wrong function (found by review). A second checksum covers them.
func TestDamagedOffsetsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 50
	wasm := manyFunctions(n)
	run := func() uint64 {
		rt := cachedCompiler(ctx, t, dir)
		defer rt.Close(ctx)
		mod, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		res, err := mod.ExportedFunction("last").Call(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if got := run(); got != n-1 {
		t.Fatalf("compiled: last() = %d", got)
	}
	path, b := cacheEntry(t, dir)
	offsets := 6 + 1 + int(b[6]) + 4
	copy(b[offsets+8*(n-1):offsets+8*n], b[offsets:offsets+8]) // last's offset := function 0's
	replaceEntry(t, path, b)
	if got := run(); got != n-1 {
		t.Fatalf("from a damaged entry: last() = %d, want %d: the damage was not detected", got, n-1)
	}
}
