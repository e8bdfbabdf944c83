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

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
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

// runOnce starts m and passes one event through it.
func runOnce(t *testing.T, m *wasmhost.Module, event []byte) []byte {
	t.Helper()
	ctx := context.Background()
	lg := zerolog.New(zerolog.NewTestWriter(t))
	tr := m.NewTransformer(wasmhost.TransformerConfig{Logger: &lg})
	defer tr.Close(ctx)
	if _, err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	in := benchBatch(1)
	in[0].Payload, in[0].Event = event, event
	out := &component.Output{}
	if err := tr.Process(ctx, in, out); err != nil || len(out.Messages) != 1 {
		t.Fatalf("process: %v, %d messages, failures %v", err, len(out.Messages), out.Failures)
	}
	return out.Messages[0].Payload
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestCodeFile: a module's machine code runs from a file of the cache,
// which holds exactly that code; a second process (Host) maps the same
// file, and one whose file is damaged writes it again.
func TestCodeFile(t *testing.T) {
	dir := t.TempDir()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	event := []byte(`{"a":1}`)

	h, m := loadCode(t, dir, wasm)
	if err := m.CodeFile(); err != nil {
		t.Fatalf("code not mapped from a file: %v", err)
	}
	path := h.CodePath(wasm, uint32(testMemoryLimit/65536))
	code := m.Code()
	if got := mappingOf(t, code).path; got != path {
		t.Fatalf("the code is mapped from %q, want %q", got, path)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(file)%os.Getpagesize() != 0 || !bytes.Equal(file[:len(code)], code) || bytes.ContainsFunc(file[len(code):], func(r rune) bool { return r != 0 }) {
		t.Fatalf("the file (%d bytes) is not the code (%d bytes) padded with zeros to a page", len(file), len(code))
	}
	if got := runOnce(t, m, event); !bytes.Equal(got, event) {
		t.Fatalf("got %q, want %q", got, event)
	}

	// A second Host (as a second process would) maps the same file.
	ino := inode(t, path)
	_, m2 := loadCode(t, dir, wasm)
	if err := m2.CodeFile(); err != nil {
		t.Fatalf("second load: %v", err)
	}
	if got := mappingOf(t, m2.Code()).path; got != path {
		t.Fatalf("second load: the code is mapped from %q, want %q", got, path)
	}
	if inode(t, path) != ino {
		t.Error("second load wrote the file again: it should have reused it")
	}
	runOnce(t, m2, event)

	// A damaged file is never mapped: it is written again. (Damaged as a
	// new file renamed over the old: one changed in place would change the
	// code the first Host runs, which is why the folder must be writable
	// by Sluice alone.)
	file[len(code)/2] ^= 0xff
	if err := os.WriteFile(path+".damaged", file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".damaged", path); err != nil {
		t.Fatal(err)
	}
	_, m3 := loadCode(t, dir, wasm)
	if err := m3.CodeFile(); err != nil {
		t.Fatalf("load over a damaged file: %v", err)
	}
	fixed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fixed[:len(code)], m3.Code()[:len(code)]) {
		t.Fatal("the damaged file was not written again")
	}
	if got := runOnce(t, m3, event); !bytes.Equal(got, event) {
		t.Fatalf("after the damaged file: got %q, want %q", got, event)
	}
	// The first Host keeps the file it checked, replaced since.
	if got := runOnce(t, m, event); !bytes.Equal(got, event) {
		t.Fatalf("first Host after the file was replaced: got %q", got)
	}
}

// TestCodeFileUnwritable: when the file cannot be written, the code stays
// in anonymous memory and the module runs as before.
func TestCodeFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	// A file where the folder of code files would be.
	if err := os.WriteFile(filepath.Join(dir, "sluice-code1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	_, m := loadCode(t, dir, wasm)
	if m.CodeFile() == nil {
		t.Fatal("the code is mapped from a file that cannot exist")
	}
	if got := mappingOf(t, m.Code()).path; got != "" {
		t.Fatalf("the code is mapped from %q, want anonymous memory", got)
	}
	runOnce(t, m, []byte(`{"a":1}`))
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
