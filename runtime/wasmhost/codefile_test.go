package wasmhost

import (
	"context"
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestCompiledCode: the reach into wazero finds a compiled module's machine
// code (a wazero upgrade that moves it fails here, not in memory figures),
// and finds none where there is none.
func TestCompiledCode(t *testing.T) {
	ctx := context.Background()
	wasm := wasmtest.ABIModule{PerRecord: true}.Bytes()
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
		defer rt.Close(ctx)
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := compiledCode(cm)
		if len(code) == 0 {
			t.Fatal("no machine code found in a module compiled by wazero's compiler")
		}
		if uintptr(unsafe.Pointer(unsafe.SliceData(code)))%uintptr(os.Getpagesize()) != 0 {
			t.Error("the machine code does not start a page")
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := compiledCode(cm); code != nil {
		t.Errorf("the interpreter's module has %d bytes of machine code", len(code))
	}
	if code, _ := compiledCode(nil); code != nil {
		t.Error("a nil module has machine code")
	}
}
