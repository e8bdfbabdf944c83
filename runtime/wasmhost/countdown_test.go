package wasmhost_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestModuleCannotResetItsCountdown: the host adds a countdown local to
// each function and a fuel global to the module, after the module's own.
// A loop that sets local 4 (one past its params and locals) on every turn
// reset the countdown before it reached its check, so a loop of 2^31 turns
// ran to its end under a 1 ms budget. Such code is invalid as written, and
// Load refuses it, as it refuses a module writing the fuel global.
func TestModuleCannotResetItsCountdown(t *testing.T) {
	const c = 4
	for _, tc := range []struct {
		name string
		body wasmtest.Code
		want string
	}{
		{"countdown local", wasmtest.Code{}.Loop().
			LocalGet(3).I32Const(1).Op(wasmtest.OpI32Add).LocalTee(3).
			I32Const(-1 << 31).Op(wasmtest.OpI32LtU).
			I32Const(100).LocalSet(c).
			BrIf(0).End(), "local 4 does not exist (the function has 4)"},
		{"fuel global", wasmtest.Code{}.I32Const(12345).GlobalSet(0), "global 0 does not exist (the module has 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sharedHost(t).Load(context.Background(), "countdown.wasm", importModule(tc.body), wasmhost.LoadOptions{MemoryLimit: 32 << 20})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want it refused: %s", err, tc.want)
			}
		})
	}
}
