package wasmhost

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/statedir"
	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
)

// Host owns the wazero runtime, the compilation cache and the modules
// compiled so far. It is safe for concurrent use.
type Host struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
	dir   string

	mu      sync.Mutex
	modules map[modKey]*compiled

	// closing guards the compiled code's address ranges: once Close has
	// them unmapped, releaseCode must not touch what may be mapped there
	// next.
	closing sync.RWMutex
	closed  bool
}

type modKey struct {
	sum         [sha256.Size]byte
	pages       uint32
	unprotected bool
}

// compiled is a module compiled for one memory cap, shared by every
// Transformer that loads the same bytes with the same limit.
type compiled struct {
	once sync.Once
	err  error
	cm   wazero.CompiledModule
	info instrument.Result
	// iface is what the module imports and exports, read from its
	// sections (wazero's ImportedFunctions would describe every function).
	iface instrument.Interface
	// codeFile is why the machine code is not mapped from a file (nil: it
	// is; codefile.go).
	codeFile error
	code     []byte // the machine code, when it is mapped from a file
}

// Options configure a Host.
type Options struct {
	// CacheDir holds wazero's compiled code. Empty: compile in memory only
	// (every process start compiles again).
	CacheDir string
}

// New creates a Host.
func New(ctx context.Context, opt Options) (*Host, error) {
	var cache wazero.CompilationCache
	if opt.CacheDir != "" {
		if err := os.MkdirAll(opt.CacheDir, statedir.DirMode); err != nil {
			return nil, fmt.Errorf("create wasm compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opt.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open wasm compilation cache %s: %w", opt.CacheDir, err)
		}
		cache = c
		pruneCache(opt.CacheDir, time.Now())
	} else {
		cache = wazero.NewCompilationCache()
	}
	// No WithCloseOnContextDone: it costs 10-20x on loops; instrumented
	// modules stop themselves through the check import instead.
	cfg := wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(false)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	h := &Host{rt: rt, cache: cache, dir: opt.CacheDir, modules: map[modKey]*compiled{}}
	if err := h.instantiateImports(ctx); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return h, nil
}

// Close releases the runtime and every module compiled by it.
func (h *Host) Close(ctx context.Context) error {
	h.closing.Lock()
	h.closed = true
	h.closing.Unlock()
	err := h.rt.Close(ctx)
	if cerr := h.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

type sharedKey struct{ dir string }

// CacheEnv names the environment variable that moves the compilation
// cache out of the state directory: a folder shared by several state
// directories (the test suite's, CI's), or a writable place when the state
// directory is not.
const CacheEnv = "SLUICE_WASM_CACHE"

// CacheDir is where a Host for stateDir keeps compiled code: $SLUICE_WASM_CACHE
// when set, else stateDir/wasm-cache, else "" (memory only).
func CacheDir(stateDir string) string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	if stateDir != "" {
		return filepath.Join(stateDir, "wasm-cache")
	}
	return ""
}

// Shared returns the process-wide Host kept in env.Shared, creating it on
// first use with its compilation cache in CacheDir(env.StateDir).
func Shared(env component.Env) (*Host, error) {
	dir := CacheDir(env.StateDir)
	if env.Shared == nil {
		return nil, fmt.Errorf("wasm host: no shared registry in the environment")
	}
	v, err := env.Shared.Get(sharedKey{dir}, func() (any, func() error, error) {
		h, err := New(context.Background(), Options{CacheDir: dir})
		if err != nil {
			return nil, nil, err
		}
		return h, func() error { return h.Close(context.Background()) }, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Host), nil
}

// Install makes h the Host that Shared returns for tasks with stateDir
// (tests use it to share one Host and one compilation cache across
// components). It fails if another Host is already in place.
func Install(shared *component.Shared, stateDir string, h *Host) error {
	dir := CacheDir(stateDir)
	v, err := shared.Get(sharedKey{dir}, func() (any, func() error, error) { return h, nil, nil })
	if err != nil {
		return err
	}
	if v.(*Host) != h {
		return fmt.Errorf("wasm host: another host is already installed for %q", stateDir)
	}
	return nil
}

// Host imports offered to guests, module "sluice". The signatures are part
// of the ABI (docs/abi.md).
const importModule = "sluice"

var hostImports = map[string][2][]api.ValueType{
	"log":       {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil},
	"metric":    {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeF64}, nil},
	"kv_get":    {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI32}},
	"kv_put":    {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI64}, {api.ValueTypeI32}},
	"kv_add":    {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI64}, {api.ValueTypeI32}},
	"kv_delete": {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI32}},
}

func (h *Host) instantiateImports(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		return fmt.Errorf("instantiate WASI: %w", err)
	}
	b := h.rt.NewHostModuleBuilder(importModule)
	fns := map[string]api.GoModuleFunc{
		"log":       hostLog,
		"metric":    hostMetric,
		"kv_get":    hostKVGet,
		"kv_put":    hostKVPut,
		"kv_add":    hostKVAdd,
		"kv_delete": hostKVDelete,
	}
	for name, fn := range fns {
		sig := hostImports[name]
		b.NewFunctionBuilder().WithGoModuleFunction(fn, sig[0], sig[1]).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %q: %w", importModule, err)
	}
	if _, err := h.rt.NewHostModuleBuilder(instrument.CheckModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(hostCheck), nil, nil).Export(instrument.CheckName).
		Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %q: %w", instrument.CheckModule, err)
	}
	return nil
}

// moduleConfig is the sandbox: no arguments, no environment, no
// directories, no sockets; real clocks and randomness. Sleeping is not
// granted (wazero's default sleep returns at once), so a guest cannot wait
// out its time budget inside the host where no check runs.
func moduleConfig(start bool, inst *instance) wazero.ModuleConfig {
	cfg := wazero.NewModuleConfig().WithName("").
		WithSysWalltime().WithSysNanotime().
		WithRandSource(randSource{inst}).
		WithStdout(&inst.stdout).WithStderr(&inst.stderr).
		WithStartFunctions()
	if start {
		cfg = cfg.WithStartFunctions("_initialize")
	}
	return cfg
}
