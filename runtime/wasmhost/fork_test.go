package wasmhost_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// simdBody is a module whose only function body uses a SIMD instruction
// (v128.const; drop): valid with CoreFeaturesV2, invalid with V1. Nothing
// outside the body names SIMD, so only body validation can refuse it.
var simdBody = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // func 0: type 0
	0x0a, 0x17, 0x01, 0x15, 0x00, // code: 1 body, 21 bytes, no locals
	0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const
	0x1a, 0x0b, // drop, end
}

// With wazero upstream, a runtime whose features exclude SIMD refuses this
// module whatever its compilation cache holds. Sluice's fork skips body
// validation on a cache hit, and its cache key (module bytes, CPU) did not
// include the runtime's enabled features: a V1 runtime sharing a cache with
// a V2 one compiled it. The key now includes them (wazerofork/SLUICE.md).
func TestFeatureMismatchSkipsBodyValidation(t *testing.T) {
	needCompiler(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		cache func(t *testing.T) (wazero.CompilationCache, wazero.CompilationCache)
	}{
		{"shared in-memory cache", func(t *testing.T) (wazero.CompilationCache, wazero.CompilationCache) {
			c := wazero.NewCompilationCache()
			return c, c
		}},
		{"shared cache directory", func(t *testing.T) (wazero.CompilationCache, wazero.CompilationCache) {
			dir := t.TempDir()
			a, err := wazero.NewCompilationCacheWithDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			b, err := wazero.NewCompilationCacheWithDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := tc.cache(t)
			// Without any cache: V1 refuses the body.
			plain := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV1))
			defer plain.Close(ctx)
			if _, err := plain.CompileModule(ctx, simdBody); err == nil {
				t.Fatal("V1 runtime without a cache accepted a SIMD body")
			}
			v2 := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(ca).WithCoreFeatures(api.CoreFeaturesV2))
			defer v2.Close(ctx)
			if _, err := v2.CompileModule(ctx, simdBody); err != nil {
				t.Fatalf("V2 runtime: %v", err)
			}
			v1 := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cb).WithCoreFeatures(api.CoreFeaturesV1))
			defer v1.Close(ctx)
			cm, err := v1.CompileModule(ctx, simdBody)
			if err == nil {
				_, ierr := v1.InstantiateModule(ctx, cm, wazero.NewModuleConfig())
				t.Errorf("V1 runtime sharing the cache compiled a module whose body uses SIMD (instantiate: %v); want it refused as without a cache", ierr)
			}
		})
	}
}

// badTypeIndex is a module whose one function names type 5 of a type
// section holding 1: invalid, refused by validateFunctions ("type section
// index 5 out of range"), a check the fork deferred with the bodies.
var badTypeIndex = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x05, // func 0: type 5 (out of range)
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: 1 body, no locals, end
}

// With a function listener factory in the context (wazero's
// experimental API, e.g. logging.NewLoggingListenerFactory), CompileModule
// builds function definitions ("must be called after all validation")
// before the engine validates the deferred part: upstream refuses this
// module with an error, the fork panicked with an index out of range. The
// fork now checks what is not about a body at once, and with listeners
// validates the bodies at once too.
func TestListenersBeforeDeferredValidation(t *testing.T) {
	for _, cfg := range []struct {
		name string
		c    wazero.RuntimeConfig
	}{{"compiler", wazero.NewRuntimeConfigCompiler()}, {"interpreter", wazero.NewRuntimeConfigInterpreter()}} {
		t.Run(cfg.name, func(t *testing.T) {
			if cfg.name == "compiler" {
				needCompiler(t)
			}
			ctx := experimental.WithFunctionListenerFactory(context.Background(),
				experimental.FunctionListenerFactoryFunc(func(api.FunctionDefinition) experimental.FunctionListener { return nil }))
			r := wazero.NewRuntimeWithConfig(ctx, cfg.c)
			defer r.Close(ctx)
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("CompileModule panicked: %v; want the error upstream returns (type section index out of range)", p)
					}
				}()
				_, err = r.CompileModule(ctx, badTypeIndex)
			}()
			if err == nil {
				t.Fatal("a module whose function names a missing type was compiled")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// needCompiler skips a test of wazero's compiler where wazero has none
// (32-bit arm runs the interpreter: NewRuntimeConfigCompiler panics).
func needCompiler(t *testing.T) {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("wazero has no compiler on %s", runtime.GOARCH)
	}
}

// manyFunctions is a module of n functions () -> i32, each returning its
// index, the last one exported as "last".
func manyFunctions(n int) []byte {
	uleb := func(b []byte, v uint32) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	sleb := func(b []byte, v int32) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	section := func(b []byte, id byte, body []byte) []byte {
		return append(uleb(append(b, id), uint32(len(body))), body...)
	}
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	m = section(m, 1, []byte{0x01, 0x60, 0x00, 0x01, 0x7f}) // type 0: () -> i32
	funcs := uleb(nil, uint32(n))
	for range n {
		funcs = append(funcs, 0)
	}
	m = section(m, 3, funcs)
	export := append([]byte{0x01, 0x04, 'l', 'a', 's', 't', 0x00}, uleb(nil, uint32(n-1))...)
	m = section(m, 7, export)
	code := uleb(nil, uint32(n))
	for i := range n {
		body := append(sleb([]byte{0x00, 0x41}, int32(i)), 0x0b) // no locals; i32.const i; end
		code = append(uleb(code, uint32(len(body))), body...)
	}
	return section(m, 10, code)
}

// A cache entry lists each function's offset in 8 bytes after a short
// header. The fork reads the entry through a 64 KiB buffer, which returns
// what it holds, fewer bytes than asked where an offset straddles its
// end; wazero's reader took a short read for the end of the file, and a
// module of more than about 8,000 functions (a large Go plugin) failed to
// load from the cache.
func TestCacheEntryOfManyFunctions(t *testing.T) {
	needCompiler(t)
	ctx := context.Background()
	dir := t.TempDir()
	const n = 20000
	wasm := manyFunctions(n)
	for i, want := range []string{"compiled", "from the cache"} {
		rt := cachedCompiler(ctx, t, dir)
		mod, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatalf("%s (start %d): %v", want, i+1, err)
		}
		res, err := mod.ExportedFunction("last").Call(ctx)
		if err != nil || len(res) != 1 || res[0] != n-1 {
			t.Fatalf("%s: last() = %v, %v; want %d", want, res, err, n-1)
		}
		rt.Close(ctx)
	}
}

// A module without functions (a memory and a global, exported) has no
// native code: its cache entry is read back as a hit, not recompiled and
// rewritten at every load.
func TestCacheEntryWithoutCode(t *testing.T) {
	needCompiler(t)
	ctx := context.Background()
	dir := t.TempDir()
	wasm := []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1
		0x06, 0x06, 0x01, 0x7f, 0x00, 0x41, 0x2a, 0x0b, // global i32 const 42
		0x07, 0x05, 0x01, 0x01, 'g', 0x03, 0x00, // export "g" global 0
	}
	var entry string
	var mod time.Time
	for i := range 3 {
		rt := cachedCompiler(ctx, t, dir)
		m, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatalf("load %d: %v", i+1, err)
		}
		if g := m.ExportedGlobal("g"); g == nil || g.Get() != 42 {
			t.Fatalf("load %d: global g = %v", i+1, g)
		}
		rt.Close(ctx)
		files, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
		if len(files) != 1 {
			t.Fatalf("load %d: cache files %v, want one", i+1, files)
		}
		st, err := os.Stat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			entry, mod = files[0], st.ModTime()
		} else if files[0] != entry || !st.ModTime().Equal(mod) {
			t.Fatalf("load %d: the entry was written again: not read back as a hit", i+1)
		}
	}
}

// cachedCompiler is a runtime of wazero's compiler (Sluice's fork) with its
// compilation cache in dir.
func cachedCompiler(ctx context.Context, t *testing.T, dir string) wazero.Runtime {
	t.Helper()
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache))
}
