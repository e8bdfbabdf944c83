package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestLoadFile: a module loaded from its file runs, the first time
// (compiled) as from the cache; a file whose content changes between its
// hashing and its reading is refused, and the refusal is not kept: the
// next load of it works.
func TestLoadFile(t *testing.T) {
	ctx := context.Background()
	dir, cache := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "m.wasm")
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	event := []byte(`{"a":1}`)
	for i := range 2 {
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		f, err := wasmhost.OpenModule(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(wasm)) {
			t.Fatalf("size %d, want %d", f.Size(), len(wasm))
		}
		m, err := h.LoadFile(ctx, "m", f, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		if err != nil {
			t.Fatalf("load %d: %v", i+1, err)
		}
		if got := runOnce(t, m, event); !bytes.Equal(got, event) {
			t.Fatalf("load %d: got %q", i+1, got)
		}
		h.Close(ctx)
	}

	// Changed after it was hashed, with a host that has not rewritten it.
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	f, err := wasmhost.OpenModule(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Clone(wasm), 0, 1, 2), 0o600); err != nil {
		t.Fatal(err)
	}
	var fe *wasmhost.ModuleFileError
	if _, err := h.LoadFile(ctx, "m", f, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); !errors.As(err, &fe) || !strings.Contains(err.Error(), "changed while it was loaded") {
		t.Fatalf("a file changed after it was hashed: %v, want it refused as changed", err)
	}
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LoadFile(ctx, "m", f, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); err != nil {
		t.Fatalf("the same file once restored: %v (the refusal was kept)", err)
	}
}

// TestRewrittenModuleReleased: a second start maps the rewritten module
// from the cache instead of reading it, and unmaps it once the module is
// compiled and its function bodies dropped (they were slices of it).
func TestRewrittenModuleReleased(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the rewritten module is mapped on 64-bit Linux only")
	}
	ctx := context.Background()
	cache := t.TempDir()
	wasm, _ := wasmtest.GoGuest(t, "upper")
	var first []byte
	for i := range 2 {
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		m, err := h.Load(ctx, "upper", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		if err != nil {
			t.Fatal(err)
		}
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		if rw := h.RewrittenPath(wasm, uint32(testMemoryLimit/65536)); bytes.Contains(maps, []byte(rw)) {
			t.Fatalf("load %d: the rewritten module %s is still mapped after its compilation", i+1, rw)
		}
		got := runOnce(t, m, []byte(`{"name":"ada"}`))
		if i == 0 {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Fatalf("from the cache: got %q, compiled: %q", got, first)
		}
		h.Close(ctx)
	}
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
