package wasmhost_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// sluice_close is "not called on an instance that trapped" (docs/abi.md
// 2). An instance whose sluice_init trapped (here: a replacement whose
// init finds the key the first instance claimed) was closed as a healthy
// one: sluice_close ran on whatever state the trap left.
func TestCloseNotCalledAfterInitTraps(t *testing.T) {
	const descAt = 1024
	desc := `{"name":"inittrap","version":"0"}`
	kvAdd := wasmtest.Import{Module: "sluice", Name: "kv_add",
		Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I64}, Results: []byte{wasmtest.I32}}}
	kvPut := kvAdd
	kvPut.Name = "kv_put"
	wasm := wasmtest.Module{Imports: []wasmtest.Import{kvAdd, kvPut}, MemoryPages: 64, ExportMemory: true, Data: []byte(desc), DataOffset: descAt,
		Funcs: []wasmtest.Func{
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I32}}, Export: "sluice_abi_version", Body: wasmtest.Code{}.I32Const(1)},
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Export: "sluice_alloc", Body: wasmtest.Code{}.I32Const(1 << 20)},
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I64}}, Export: "sluice_describe", Body: wasmtest.Code{}.I64Const(descAt<<32 | int64(len(desc)))},
			// Every batch traps, so that the instance is replaced.
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I64}}, Export: "sluice_process",
				Body: wasmtest.Code{}.Op(wasmtest.OpUnreachable)},
			// kv_add("{"); trap when another instance added it first.
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I64}}, Export: "sluice_init",
				Body: wasmtest.Code{}.I32Const(descAt).I32Const(1).I32Const(descAt).I32Const(1).I64Const(0).Call(0).
					If().Op(wasmtest.OpUnreachable).End().I64Const(0)},
			// kv_put(`{"`): a trace of the call.
			{Type: wasmtest.FuncType{}, Export: "sluice_close",
				Body: wasmtest.Code{}.I32Const(descAt).I32Const(2).I32Const(descAt).I32Const(1).I64Const(0).Call(1).Op(wasmtest.OpDrop)},
		}}.Bytes()
	kv := wasmhost.NewKV(0)
	tr := transformer(t, wasm, wasmhost.TransformerConfig{KV: kv})
	if f := failures(process(t, tr, msgs("a"))); len(f) != 1 {
		t.Fatalf("failures = %v, want the record's trap", f)
	}
	// The replacement's init traps: the batch cannot run.
	if err := tr.Process(context.Background(), msgs("b"), &component.Output{}); err == nil {
		t.Fatal("a batch ran on an instance whose init trapped")
	}
	if _, ok := kv.Get([]byte(`{"`)); ok {
		t.Fatal("sluice_close was called on an instance whose sluice_init trapped")
	}
}
