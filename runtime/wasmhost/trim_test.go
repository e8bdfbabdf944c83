package wasmhost

import (
	"context"
	"reflect"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestDropFunctionBodies: the reach into wazero's decoded module still
// finds the bodies (a wazero upgrade that moves them fails here, not in
// memory figures), and a module without them still instantiates and runs.
func TestDropFunctionBodies(t *testing.T) {
	ctx := context.Background()
	wasm, _ := wasmtest.GoGuest(t, "upper")
	h, err := New(ctx, Options{CacheDir: wasmtest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, "upper", wasm, LoadOptions{MemoryLimit: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if n := bodyBytes(t, m.c.cm); n != 0 {
		t.Errorf("%d bytes of function bodies kept after Load", n)
	}
	cm, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if bodyBytes(t, cm) == 0 {
		t.Fatal("a fresh compiled module has no bodies: the test looks in the wrong place")
	}
	if !dropFunctionBodies(cm) || bodyBytes(t, cm) != 0 {
		t.Error("dropFunctionBodies did not drop the bodies")
	}
	if dropFunctionBodies(wazero.CompiledModule(nil)) {
		t.Error("a nil module reported dropped")
	}
}

func bodyBytes(t *testing.T, cm wazero.CompiledModule) int {
	t.Helper()
	code := reflect.ValueOf(cm).Elem().FieldByName("module").Elem().FieldByName("CodeSection")
	n := 0
	for i := range code.Len() {
		n += code.Index(i).FieldByName("Body").Len()
	}
	return n
}
