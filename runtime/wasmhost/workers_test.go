package wasmhost_test

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// TestCompileWorkers: a module compiles on one goroutine a core (at most
// four), on one when the process has a memory limit (each worker adds to
// the first start's peak), and on what SLUICE_COMPILE_WORKERS says.
func TestCompileWorkers(t *testing.T) {
	t.Setenv("SLUICE_COMPILE_WORKERS", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	if got, want := wasmhost.CompileWorkers(), min(runtime.GOMAXPROCS(0), 4); got != want {
		t.Errorf("no memory limit: %d workers, want %d", got, want)
	}
	debug.SetMemoryLimit(48 << 20)
	if got := wasmhost.CompileWorkers(); got != 1 {
		t.Errorf("a 48 MiB memory limit: %d workers, want 1", got)
	}
	t.Setenv("SLUICE_COMPILE_WORKERS", "3")
	if got := wasmhost.CompileWorkers(); got != 3 {
		t.Errorf("SLUICE_COMPILE_WORKERS=3: %d workers", got)
	}
	t.Setenv("SLUICE_COMPILE_WORKERS", "none")
	if got := wasmhost.CompileWorkers(); got != 1 {
		t.Errorf("SLUICE_COMPILE_WORKERS=none under a memory limit: %d workers, want 1", got)
	}
}
