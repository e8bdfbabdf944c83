package wasmhost_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// processModule is a transform whose sluice_process runs body (with two
// i32 locals of its own after its two params) and then returns every input
// record unchanged.
func processModule(body wasmtest.Code) []byte {
	const resultAt, descAt = 4096, 1024
	desc := `{"name":"countdown","version":"0"}`
	body = wasmtest.Code{}.LocalGet(0).I32Load(4).LocalSet(2).Op(body...).
		I32Const(resultAt).I32Const(1).I32Store(0).
		I32Const(resultAt).LocalGet(2).I32Store(4).
		I32Const(resultAt).I32Const(0).I32Store(8).
		I32Const(resultAt).I32Const(0).I32Store(12).
		I64Const(resultAt << 32).
		LocalGet(2).I32Const(16).Op(wasmtest.OpI32Mul).I32Const(16).Op(wasmtest.OpI32Add).Op(wasmtest.OpI64ExtendU).
		Op(wasmtest.OpI64Or)
	return wasmtest.Module{MemoryPages: 64, ExportMemory: true, Data: []byte(desc), DataOffset: descAt,
		Funcs: []wasmtest.Func{
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I32}}, Export: "sluice_abi_version", Body: wasmtest.Code{}.I32Const(1)},
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Export: "sluice_alloc", Body: wasmtest.Code{}.I32Const(1 << 20)},
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I64}}, Export: "sluice_describe", Body: wasmtest.Code{}.I64Const(descAt<<32 | int64(len(desc)))},
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I64}}, Export: "sluice_process",
				Locals: []byte{wasmtest.I32, wasmtest.I32}, Body: body},
		}}.Bytes()
}

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
			_, err := sharedHost(t).Load(context.Background(), "countdown.wasm", processModule(tc.body), wasmhost.LoadOptions{MemoryLimit: 32 << 20})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want it refused: %s", err, tc.want)
			}
		})
	}
}
