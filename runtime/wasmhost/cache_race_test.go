//go:build amd64 || arm64

package wasmhost_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// Two goroutines compiling the same module on one runtime with a file
// cache: the loser of addCompiledModuleToMemory gets the winner's module,
// and used to map its code again while the winner did (a race on
// executables.mapped, and code moved under a module in use; found by
// review). Only the winner writes the entry and maps it now. Run with
// -race.
func TestConcurrentCompilesOfOneModule(t *testing.T) {
	ctx := context.Background()
	wasm := manyFunctions(300)
	for iter := 0; iter < 30; iter++ {
		rt := cachedCompiler(ctx, t, t.TempDir())
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := rt.CompileModule(ctx, wasm); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		rt.Close(ctx)
	}
}

// The same through Sluice's Host. Two loads of one module whose
// memory caps rewrite it to the same bytes (no cap, and a cap of 65536
// pages, both leave the maximum at 65536) are two keys of the Host, so
// two compilations of one wazero module ID on one engine at once.
func TestConcurrentLoadsOfOneModule(t *testing.T) {
	ctx := context.Background()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	for iter := 0; iter < 20; iter++ {
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, limit := range []int64{0, 65536 * 65536} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Load(ctx, "m", wasm, wasmhost.LoadOptions{MemoryLimit: limit}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		h.Close(ctx)
	}
}
