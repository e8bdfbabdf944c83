//go:build linux && (amd64 || arm64)

package wasmhost_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// codeMapping is the line of /proc/self/smaps that maps addr: its file
// ("" for anonymous memory), size and resident kilobytes.
type codeMapping struct {
	path          string
	sizeKB, rssKB int
}

func mappingOf(t *testing.T, code []byte) codeMapping {
	t.Helper()
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(code))))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var m codeMapping
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			if found {
				return m
			}
			lo, hi, _ := strings.Cut(fields[0], "-")
			l, _ := strconv.ParseUint(lo, 16, 64)
			h, _ := strconv.ParseUint(hi, 16, 64)
			if addr >= l && addr < h {
				found = true
				if len(fields) >= 6 {
					m.path = fields[5]
				}
			}
			continue
		}
		if found && len(fields) >= 2 {
			switch fields[0] {
			case "Size:":
				m.sizeKB, _ = strconv.Atoi(fields[1])
			case "Rss:":
				m.rssKB, _ = strconv.Atoi(fields[1])
			}
		}
	}
	if !found {
		t.Fatalf("no mapping holds the code at %#x", addr)
	}
	return m
}

func loadCode(t *testing.T, dir string, wasm []byte) (*wasmhost.Host, *wasmhost.Module) {
	t.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	m, err := h.Load(ctx, "code", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	return h, m
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// entryOf is the file of dir's wazero cache a module's code is mapped
// from, failing the test when it runs from anywhere else.
func entryOf(t *testing.T, dir string, code []byte) string {
	t.Helper()
	p := mappingOf(t, code).path
	if rel, err := filepath.Rel(dir, p); err != nil || !strings.HasPrefix(rel, "wazero-") || strings.Count(rel, "/") != 1 {
		t.Fatalf("the code is mapped from %q, want an entry of the cache %s", p, dir)
	}
	return p
}

// TestCodeFile: a module's machine code runs from its entry in wazero's
// cache, the first time (just compiled) as after a restart; a second
// process (Host) maps the same file, and one whose entry is damaged or
// cut short compiles the module again and replaces it.
func TestCodeFile(t *testing.T) {
	dir := t.TempDir()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	event := []byte(`{"a":1}`)

	_, m := loadCode(t, dir, wasm)
	if err := m.CodeFile(); err != nil {
		t.Fatalf("code not mapped from a file: %v", err)
	}
	code := m.Code()
	path := entryOf(t, dir, code)
	if got := runOnce(t, m, event); !bytes.Equal(got, event) {
		t.Fatalf("got %q, want %q", got, event)
	}

	// A second Host (as a second process would) maps the same file.
	ino := inode(t, path)
	_, m2 := loadCode(t, dir, wasm)
	if err := m2.CodeFile(); err != nil {
		t.Fatalf("second load: %v", err)
	}
	if got := entryOf(t, dir, m2.Code()); got != path {
		t.Fatalf("second load: the code is mapped from %q, want %q", got, path)
	}
	if inode(t, path) != ino {
		t.Error("second load wrote the entry again: it should have reused it")
	}
	runOnce(t, m2, event)

	// A damaged entry is never run: the module is compiled again and the
	// entry replaced (replaceEntry).
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(file, code[:64])
	if at < 0 || at%(64<<10) != 0 {
		t.Fatalf("the entry does not hold the code at a 64 KiB boundary (found at %d)", at)
	}
	for _, damage := range []struct {
		name string
		file []byte
	}{
		{"a byte of code flipped", func() []byte {
			f := bytes.Clone(file)
			f[at+len(code)/2] ^= 0xff
			return f
		}()},
		{"cut short in its code", file[:at+len(code)/2]},
		{"its count of functions damaged", func() []byte {
			// After "WAZEVO", the version's length and the version: the
			// count of functions, each with an offset of 8 bytes.
			f := bytes.Clone(file)
			copy(f[7+int(f[6]):], []byte{0xf0, 0xff, 0xff, 0xff})
			return f
		}()},
		{"cut short in its header", file[:10]},
	} {
		replaceEntry(t, path, damage.file)
		_, m3 := loadCode(t, dir, wasm)
		if err := m3.CodeFile(); err != nil {
			t.Fatalf("%s: %v", damage.name, err)
		}
		if got := entryOf(t, dir, m3.Code()); got != path {
			t.Fatalf("%s: the code is mapped from %q, want %q", damage.name, got, path)
		}
		if fixed, err := os.ReadFile(path); err != nil || !bytes.Equal(fixed, file) {
			t.Fatalf("%s: the entry was not written again (%v)", damage.name, err)
		}
		if got := runOnce(t, m3, event); !bytes.Equal(got, event) {
			t.Fatalf("%s: got %q", damage.name, got)
		}
	}
	// The first Host keeps the file it mapped, replaced since.
	if got := runOnce(t, m, event); !bytes.Equal(got, event) {
		t.Fatalf("first Host after the file was replaced: got %q", got)
	}
}

// TestCodeFileUnwritable: when the cache entry cannot be written (a full
// disk) or mapped executable (a file system mounted noexec), the module
// still loads, its code in anonymous memory, and runs.
func TestCodeFileUnwritable(t *testing.T) {
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	event := []byte(`{"a":1}`)
	t.Run("full disk", func(t *testing.T) {
		dir := testkit.Tmpfs(t, 64<<10) // smaller than the entry
		_, m := loadCode(t, dir, wasm)
		if m.CodeFile() == nil {
			t.Fatal("the code is mapped from an entry that cannot have been written")
		}
		if got := mappingOf(t, m.Code()).path; got != "" {
			t.Fatalf("the code is mapped from %q, want anonymous memory", got)
		}
		if got := runOnce(t, m, event); !bytes.Equal(got, event) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("noexec", func(t *testing.T) {
		if os.Getenv(testkit.ExecEnv) != "" {
			// qemu-user maps the guest's code itself, not executable on
			// the host: the kernel never sees an executable mapping to
			// refuse.
			t.Skipf("a noexec file system refuses nothing under an emulator (%s=%s)", testkit.ExecEnv, os.Getenv(testkit.ExecEnv))
		}
		dir := testkit.TmpfsNoexec(t, 64<<20)
		for i := range 2 { // compiled, then read from the entry
			_, m := loadCode(t, dir, wasm)
			if m.CodeFile() == nil {
				t.Fatalf("load %d: the code is mapped from a noexec file system", i+1)
			}
			if got := mappingOf(t, m.Code()).path; got != "" {
				t.Fatalf("load %d: the code is mapped from %q, want anonymous memory", i+1, got)
			}
			if got := runOnce(t, m, event); !bytes.Equal(got, event) {
				t.Fatalf("load %d: got %q", i+1, got)
			}
		}
		if ents, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*")); len(ents) != 1 {
			t.Fatalf("cache entries %v, want the one written at the first load", ents)
		}
	})
}

// TestCodeReleasedAfterStart: once a Go guest has started, the code its
// start ran is no longer resident; what it runs for a batch is.
func TestCodeReleasedAfterStart(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "upper")
	_, m := loadCode(t, wasmtest.CacheDir(), wasm)
	if err := m.CodeFile(); err != nil {
		t.Fatalf("code not mapped from a file: %v", err)
	}
	runOnce(t, m, []byte(`{"name":"ada"}`))
	mp := mappingOf(t, m.Code())
	t.Logf("code: %d KiB, resident after start and one batch: %d KiB", mp.sizeKB, mp.rssKB)
	// A Go runtime's start runs code all over the module: three quarters
	// of it is resident after a start (the kernel maps 64 KiB around each
	// page run), a third after the release and a batch.
	if mp.sizeKB == 0 || mp.rssKB > mp.sizeKB/2 {
		t.Errorf("%d of %d KiB of code resident after the start and a batch: releasing it did nothing", mp.rssKB, mp.sizeKB)
	}
}
