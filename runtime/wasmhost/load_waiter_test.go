package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// A load that waits on another of the same content, whose file changed
// after it was hashed, gets its own result, not that file's read error
// (found by review: the waiter returned "changed while it was loaded" for
// a file it never read). The two race; a failure shows in some of the
// 300 rounds.
func TestLoadDoesNotTakeAnotherLoadsReadError(t *testing.T) {
	ctx := context.Background()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	path := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := wasmhost.OpenModule(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Clone(wasm), 0), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := 0; i < 300 && bad == 0; i++ {
		h, err := wasmhost.New(ctx, wasmhost.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var berr, ferr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, ferr = h.LoadFile(ctx, "m", f, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		}()
		go func() {
			defer wg.Done()
			_, berr = h.Load(ctx, "m", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		}()
		wg.Wait()
		if berr != nil {
			bad++
			t.Errorf("iteration %d: Load of valid bytes failed: %v", i, berr)
		}
		// The file's own load fails, unless the valid bytes were compiled
		// first: then it finds them under the hash it took.
		if re := (*wasmhost.ModuleReadError)(nil); ferr != nil && !errors.As(ferr, &re) {
			t.Errorf("iteration %d: LoadFile of the changed file: %v, want a ModuleReadError", i, ferr)
		}
		h.Close(ctx)
	}
}
