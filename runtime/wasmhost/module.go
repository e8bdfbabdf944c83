package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/sluicehq/sluice/runtime/wasmhost/abi"
	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
)

// Export names of the ABI.
const (
	ExportVersion  = "sluice_abi_version"
	ExportAlloc    = "sluice_alloc"
	ExportInit     = "sluice_init"
	ExportDescribe = "sluice_describe"
	ExportProcess  = "sluice_process"
	ExportClose    = "sluice_close"
)

var (
	i32, i64 = api.ValueTypeI32, api.ValueTypeI64

	exportSigs = map[string][2][]api.ValueType{
		ExportVersion:  {nil, {i32}},
		ExportAlloc:    {{i32}, {i32}},
		ExportInit:     {{i32, i32}, {i64}},
		ExportDescribe: {nil, {i64}},
		ExportProcess:  {{i32, i32}, {i64}},
		ExportClose:    {nil, nil},
		"_initialize":  {nil, nil},
	}
	requiredExports = []string{ExportVersion, ExportAlloc, ExportDescribe, ExportProcess}
)

// Module is a compiled, checked module, ready to be instantiated.
type Module struct {
	host *Host
	c    *compiled
	// Name identifies the module in logs and metrics (its file name).
	Name string
	// Size is the size of the original module in bytes.
	Size          int
	hasInit       bool
	hasClose      bool
	hasInitialize bool
}

// LoadOptions configure Load.
type LoadOptions struct {
	// MemoryLimit caps the module's linear memory in bytes (rounded down to
	// 64 KiB pages). 0: no cap beyond the module's own.
	MemoryLimit int64
	// unprotected skips the runaway instrumentation; only benchmarks set it
	// (export_test.go), to measure what the protection costs.
	unprotected bool
}

// Load checks and compiles wasm. Compilation happens once per content and
// memory limit for the life of the Host, and once per machine when the Host
// has a cache directory. Errors say what is wrong with the module.
func (h *Host) Load(ctx context.Context, name string, wasm []byte, opt LoadOptions) (*Module, error) {
	return h.load(ctx, name, sha256.Sum256(wasm), len(wasm), func() ([]byte, error) { return wasm, nil }, opt)
}

// LoadFile is Load of a module file read by OpenModule. Its bytes are read
// only when the host has no rewritten module of that content in its cache:
// a second start hashes the file through a small buffer and reads what it
// runs from the cache.
func (h *Host) LoadFile(ctx context.Context, name string, f *ModuleFile, opt LoadOptions) (*Module, error) {
	return h.load(ctx, name, f.sum, int(f.size), f.read, opt)
}

func (h *Host) load(ctx context.Context, name string, sum [sha256.Size]byte, size int, wasm func() ([]byte, error), opt LoadOptions) (*Module, error) {
	m, ran, err := h.loadOnce(ctx, name, sum, size, wasm, opt)
	if err != nil && !ran && ctx.Err() == nil && errors.Is(err, errNotKept) {
		// Another load of the same content ran it and failed for reasons
		// of its own (its file changed or vanished, its context ended):
		// this one runs it again, once.
		m, _, err = h.loadOnce(ctx, name, sum, size, wasm, opt)
	}
	return m, err
}

// errNotKept marks an error of a load that the Host does not keep for
// the content: a load cancelled, or a module file that could not be read
// after it was hashed.
var errNotKept = errors.New("not kept")

// notKept is such an error.
type notKept struct{ error }

func (e notKept) Unwrap() []error { return []error{e.error, errNotKept} }

func (h *Host) loadOnce(ctx context.Context, name string, sum [sha256.Size]byte, size int, wasm func() ([]byte, error), opt LoadOptions) (_ *Module, ran bool, _ error) {
	pages := uint32(0)
	if opt.MemoryLimit > 0 {
		p := opt.MemoryLimit / 65536
		if p < 1 {
			return nil, false, fmt.Errorf("memory_limit %d bytes is below one 64 KiB page", opt.MemoryLimit)
		}
		pages = uint32(min(p, 65536))
	}
	key := modKey{sum: sum, pages: pages, unprotected: opt.unprotected}
	h.mu.Lock()
	c, ok := h.modules[key]
	if !ok {
		c = &compiled{}
		h.modules[key] = c
	}
	h.mu.Unlock()
	read := func() ([]byte, error) {
		b, err := wasm()
		if err != nil {
			return nil, notKept{&ModuleReadError{Err: err}}
		}
		return b, nil
	}
	c.once.Do(func() {
		ran = true
		defer func() {
			if errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded) {
				c.err = notKept{c.err}
			}
		}()
		var mapped []byte // the rewritten module, mapped from the cache
		if opt.unprotected {
			var b []byte
			if b, c.err = read(); c.err == nil {
				c.info, c.err = instrument.Instrument(b, instrumentOptions(pages))
				c.info.Module = b
			}
		} else {
			// The rewritten module comes from the disk cache when the Host
			// has one: a second start skips the rewrite (~25 ms for a Go
			// module) as it skips the compilation.
			c.info, mapped, c.err = h.rewrite(key, read)
		}
		if c.err != nil {
			return
		}
		c.cm, c.err = h.rt.CompileModule(experimental.WithCompilationWorkers(ctx, compileWorkers()), c.info.Module)
		if c.err == nil {
			if c.iface, c.err = instrument.ReadInterface(c.info.Module); c.err != nil {
				c.cm.Close(ctx) // the Host keeps c, with its error, for its life
			}
		}
		c.info.Module = nil // wazero keeps what it needs
		// and less than it keeps: the function bodies, which are slices of
		// the module's bytes (wazerofork/SLUICE.md). A mapped module is
		// released once nothing points into it; kept mapped if wazero's
		// layout hides the bodies (a wazero upgrade: TestDropFunctionBodies).
		if dropped := c.cm == nil || dropFunctionBodies(c.cm); dropped && mapped != nil {
			unmapFile(mapped)
		}
		if c.err != nil {
			c.err = fmt.Errorf("invalid module: %w", c.err)
			return
		}
		c.codeFile = errors.New("no cache directory")
		if h.dir != "" && !key.unprotected {
			switch code, mapped := compiledCode(c.cm); {
			case mapped:
				c.code, c.codeFile = code, nil
			case code == nil:
				c.codeFile = errors.New("no machine code (the interpreter)")
			default:
				c.codeFile = errors.New("the cache entry could not be written or mapped (a full disk, a file system mounted noexec, not Linux)")
			}
		}
	})
	if c.err != nil {
		// Not kept for the next load: a cancelled load, and a file that
		// could not be read (removed, changed) since it was hashed. Only
		// this entry is removed: a newer one may be compiling already.
		if errors.Is(c.err, errNotKept) {
			h.mu.Lock()
			if h.modules[key] == c {
				delete(h.modules, key)
			}
			h.mu.Unlock()
		}
		return nil, ran, c.err
	}
	m := &Module{host: h, c: c, Name: name, Size: size}
	if err := m.check(); err != nil {
		return nil, ran, err
	}
	return m, ran, nil
}

// maxCompileWorkers caps compileWorkers on many-core machines.
const maxCompileWorkers = 4

// compileWorkers is how many goroutines compile a module's functions at its
// first load: one a core, at most maxCompileWorkers. Each adds about 10 MiB
// to that start's peak (a Go plugin compiled on two cores: 0.36-0.40 s
// instead of 0.58-0.63, 85-87 MiB at the peak instead of 76), so a process
// given a memory limit (--memory-limit, GOMEMLIMIT) compiles with one.
// SLUICE_COMPILE_WORKERS overrides both.
func compileWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_COMPILE_WORKERS")); err == nil && n > 0 {
		return n
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), maxCompileWorkers)
}

// check verifies imports and exports against the ABI before anything runs.
func (m *Module) check() error {
	var problems []string
	for _, f := range m.c.iface.Imports {
		mod, name := f.Module, f.Name
		switch mod {
		case "wasi_snapshot_preview1":
		case instrument.CheckModule:
		case importModule:
			sig, ok := hostImports[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s, which does not exist (the sluice module offers %s)", mod, name, strings.Join(hostImportNames(), ", ")))
			} else if !slices.Equal(f.Params, sig[0]) || !slices.Equal(f.Results, sig[1]) {
				problems = append(problems, fmt.Sprintf("imports %s.%s with signature %s, want %s", mod, name, sigString(f.Params, f.Results), sigString(sig[0], sig[1])))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s, which the sandbox does not grant (allowed: wasi_snapshot_preview1 and sluice.{%s})", mod, name, strings.Join(hostImportNames(), ",")))
		}
	}
	exports := make(map[string]instrument.Func, len(m.c.iface.Exports))
	for _, f := range m.c.iface.Exports {
		exports[f.Name] = f
	}
	for _, name := range requiredExports {
		if _, ok := exports[name]; !ok {
			hint := ""
			if _, cmd := exports["_start"]; cmd {
				hint = " (it is a command module: build it as a reactor, e.g. go build -buildmode=c-shared)"
			}
			problems = append(problems, fmt.Sprintf("does not export %s%s", name, hint))
		}
	}
	for name, sig := range exportSigs {
		f, ok := exports[name]
		if !ok {
			continue
		}
		if !slices.Equal(f.Params, sig[0]) || !slices.Equal(f.Results, sig[1]) {
			problems = append(problems, fmt.Sprintf("exports %s with signature %s, want %s", name, sigString(f.Params, f.Results), sigString(sig[0], sig[1])))
		}
	}
	if !slices.Contains(m.c.iface.Memories, "memory") {
		problems = append(problems, "does not export its memory as \"memory\"")
	}
	if len(problems) > 0 {
		return fmt.Errorf("module %s", strings.Join(problems, "; "))
	}
	_, m.hasInit = exports[ExportInit]
	_, m.hasClose = exports[ExportClose]
	_, m.hasInitialize = exports["_initialize"]
	return nil
}

func hostImportNames() []string {
	names := make([]string, 0, len(hostImports))
	for n := range hostImports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sigString(params, results []api.ValueType) string {
	f := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return f(params) + " -> " + f(results)
}

// Description is what a module says about itself (sluice_describe).
type Description struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Summary string `json:"summary,omitempty"`
	// Parameters lists the keys the module's config table accepts. nil
	// (absent from the JSON) means the module does not say, and config
	// keys are not checked by the host.
	Parameters []Parameter `json:"parameters"`
}

// Parameter is one key of a module's config.
type Parameter struct {
	Name     string          `json:"name"`
	Type     string          `json:"type,omitempty"`
	Required bool            `json:"required,omitempty"`
	Default  json.RawMessage `json:"default,omitempty"`
	Doc      string          `json:"doc,omitempty"`
}

// Inspection is what Inspect reports about a module without running a
// batch: for `sluice plugin inspect` and validation.
type Inspection struct {
	ABIVersion  int         `json:"abi_version"`
	Description Description `json:"description"`
	Imports     []string    `json:"imports"` // "module.name", each once
	Exports     []string    `json:"exports"` // functions and memories
	// Memories are the exported memories (the ABI wants one, "memory").
	Memories []string `json:"memories"`
	Size     int      `json:"size"`
	// MemoryPages is the initial memory and MemoryMaxPages the maximum
	// after the memory limit, in 64 KiB pages.
	MemoryPages    uint32 `json:"memory_pages"`
	MemoryMaxPages uint32 `json:"memory_max_pages"`
	// InstrumentedFuncs and InstrumentedLoops count the runaway checks;
	// InstrumentedBulk the bulk memory and table operations weighed by
	// their length.
	InstrumentedFuncs int `json:"instrumented_funcs"`
	InstrumentedLoops int `json:"instrumented_loops"`
	InstrumentedBulk  int `json:"instrumented_bulk"`
}

// Inspect loads wasm with opt, instantiates it once (running its
// _initialize but not sluice_init) and reads its ABI version and
// self-description.
func (h *Host) Inspect(ctx context.Context, name string, wasm []byte, opt LoadOptions) (*Inspection, error) {
	m, err := h.Load(ctx, name, wasm, opt)
	if err != nil {
		return nil, err
	}
	inst, err := m.newInstance(ctx, nil, nil)
	if err != nil {
		return nil, err
	}
	defer inst.close(ctx)
	d, err := inst.describe(ctx)
	if err != nil {
		return nil, err
	}
	in := &Inspection{ABIVersion: abi.Version, Description: d, Size: len(wasm),
		MemoryPages: m.c.info.MemoryMin, MemoryMaxPages: m.c.info.MemoryMax,
		InstrumentedFuncs: m.c.info.Checked, InstrumentedLoops: m.c.info.Loops, InstrumentedBulk: m.c.info.Bulk}
	for _, f := range m.c.iface.Imports {
		if f.Module != instrument.CheckModule {
			in.Imports = append(in.Imports, f.Module+"."+f.Name)
		}
	}
	for _, f := range m.c.iface.Exports {
		in.Exports = append(in.Exports, f.Name)
	}
	for _, n := range m.c.iface.Memories {
		in.Exports = append(in.Exports, n)
		in.Memories = append(in.Memories, n)
	}
	// A module may import one function under several types or indexes
	// (Go imports fd_write twice): the name is listed once.
	sort.Strings(in.Imports)
	in.Imports = slices.Compact(in.Imports)
	sort.Strings(in.Exports)
	sort.Strings(in.Memories)
	return in, nil
}

// InspectModule is Inspect with a throwaway Host, for tools that look at
// one module and exit (`sluice plugin inspect`, validation of a plugin
// build). opt.CacheDir lets them reuse compiled code.
func InspectModule(ctx context.Context, name string, wasm []byte, opt Options) (*Inspection, error) {
	h, err := New(ctx, opt)
	if err != nil {
		return nil, err
	}
	defer h.Close(ctx)
	return h.Inspect(ctx, name, wasm, LoadOptions{})
}
