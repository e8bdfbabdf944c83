package instrument_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

var (
	i32       = wasmtest.I32
	voidToI32 = wasmtest.FuncType{Results: []byte{i32}}
	i32ToI32  = wasmtest.FuncType{Params: []byte{i32}, Results: []byte{i32}}
)

// sumTo returns 0+1+...+n-1 with a loop.
func sumTo() wasmtest.Func {
	return wasmtest.Func{Type: i32ToI32, Locals: []byte{i32, i32}, Export: "sum", Body: wasmtest.Code{}.
		Block().Loop().
		LocalGet(1).LocalGet(0).Op(wasmtest.OpI32GeU).BrIf(1).
		LocalGet(2).LocalGet(1).Op(wasmtest.OpI32Add).LocalSet(2).
		LocalGet(1).I32Const(1).Op(wasmtest.OpI32Add).LocalSet(1).
		Br(0).End().End().
		LocalGet(2)}
}

// fib is recursive without loops: only entry checks can stop it.
func fib(self uint32) wasmtest.Func {
	return wasmtest.Func{Type: i32ToI32, Export: "fib", Body: wasmtest.Code{}.
		LocalGet(0).I32Const(2).Op(wasmtest.OpI32LtU).
		Op(0x04, i32). // if (result i32)
		LocalGet(0).
		Op(0x05). // else
		LocalGet(0).I32Const(1).Op(wasmtest.OpI32Sub).Call(self).
		LocalGet(0).I32Const(2).Op(wasmtest.OpI32Sub).Call(self).
		Op(wasmtest.OpI32Add).
		End()}
}

func forever() wasmtest.Func {
	return wasmtest.Func{Type: voidToI32, Export: "forever", Body: wasmtest.Code{}.
		Loop().Br(0).End().I32Const(0)}
}

func testModule() []byte {
	return wasmtest.Module{
		Imports: []wasmtest.Import{{Module: "env", Name: "nop", Type: wasmtest.FuncType{}}},
		// Function indexes: 0 is the import, 1 sum, 2 fib, 3 forever.
		Funcs:       []wasmtest.Func{sumTo(), fib(2), forever()},
		MemoryPages: 1,
	}.Bytes()
}

type checker struct {
	calls int
	limit int
}

var errBudget = errors.New("budget spent")

func run(t *testing.T, wasm []byte, c *checker) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func() {}).Export("nop").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.NewHostModuleBuilder(instrument.CheckModule).NewFunctionBuilder().
		WithFunc(func() {
			c.calls++
			if c.limit > 0 && c.calls >= c.limit {
				panic(errBudget)
			}
		}).Export(instrument.CheckName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	return m
}

func call(t *testing.T, m api.Module, name string, args ...uint64) (uint64, error) {
	t.Helper()
	res, err := m.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		return 0, err
	}
	return res[0], nil
}

func TestInstrumentKeepsSemantics(t *testing.T) {
	plain := testModule()
	res, err := instrument.Instrument(plain, instrument.Options{LoopBudget: 16, CallBudget: 16})
	if err != nil {
		t.Fatal(err)
	}
	if res.Funcs != 3 || res.Loops != 2 || res.Checked != 3 {
		t.Errorf("funcs/loops/checked = %d/%d/%d, want 3/2/3", res.Funcs, res.Loops, res.Checked)
	}
	c := &checker{}
	m := run(t, res.Module, c)
	for _, tc := range []struct {
		fn   string
		arg  uint64
		want uint64
	}{{"sum", 1000, 499500}, {"sum", 0, 0}, {"fib", 15, 610}} {
		got, err := call(t, m, tc.fn, tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("%s(%d) = %d, %v; want %d", tc.fn, tc.arg, got, err, tc.want)
		}
	}
	if c.calls == 0 {
		t.Error("the check import was never called")
	}
}

func TestInstrumentStopsRunaways(t *testing.T) {
	res, err := instrument.Instrument(testModule(), instrument.Options{LoopBudget: 64, CallBudget: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   string
		arg  []uint64
	}{
		{"loop", "forever", nil},
		{"recursion", "fib", []uint64{40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &checker{limit: 100}
			m := run(t, res.Module, c)
			_, err := call(t, m, tc.fn, tc.arg...)
			if !errors.Is(err, errBudget) {
				t.Fatalf("err = %v, want the check's panic", err)
			}
			if c.calls != 100 {
				t.Errorf("check called %d times, want 100", c.calls)
			}
		})
	}
}

func TestInstrumentMemoryCap(t *testing.T) {
	for _, tc := range []struct {
		name              string
		pages, max, limit uint32
		wantMax           uint32
		wantErr           bool
	}{
		{"no max gets the limit", 2, 0, 16, 16, false},
		{"lower max kept", 2, 8, 16, 8, false},
		{"higher max capped", 2, 100, 16, 16, false},
		{"no limit", 2, 0, 0, 65536, false},
		{"initial above limit", 32, 0, 16, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wasm := wasmtest.Module{Funcs: []wasmtest.Func{forever()}, MemoryPages: int(tc.pages), MaxPages: int(tc.max)}.Bytes()
			res, err := instrument.Instrument(wasm, instrument.Options{MaxMemoryPages: tc.limit})
			var me *instrument.MemoryError
			if tc.wantErr {
				if !errors.As(err, &me) {
					t.Fatalf("err = %v, want a MemoryError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.MemoryMax != tc.wantMax || res.MemoryMin != tc.pages {
				t.Errorf("memory = %d..%d, want %d..%d", res.MemoryMin, res.MemoryMax, tc.pages, tc.wantMax)
			}
			m := run(t, res.Module, &checker{})
			if _, ok := m.Memory().Grow(tc.wantMax - tc.pages + 1); ok {
				t.Errorf("memory grew past its cap")
			}
		})
	}
}

func TestInstrumentRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, instrument.ErrNotWasm.Error()},
		{"text", []byte("(module)"), instrument.ErrNotWasm.Error()},
		{"component", []byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0}, "unsupported WebAssembly binary version 13"},
		{"truncated section", append(wasmtest.Module{MemoryPages: -1}.Bytes(), 1, 9), "section 1: unexpected end of data"},
		{"bad opcode", wasmtest.Module{MemoryPages: -1, Funcs: []wasmtest.Func{{Body: []byte{0xff}}}}.Bytes(), "unsupported opcode 0xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := instrument.Instrument(tc.in, instrument.Options{})
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzInstrument checks that the rewrite never panics, and that a module
// it accepts, if wazero accepts it, stays acceptable after
// instrumentation. wazero sees only what the rewrite accepted, as in the
// host: on some malformed modules it allocates what they declare and
// crashes the process (testdata/fuzz/FuzzInstrument/eb2e8f25ffd76162).
func FuzzInstrument(f *testing.F) {
	f.Add(testModule())
	f.Add(wasmtest.Module{MemoryPages: -1}.Bytes())
	f.Add(bulkModule())
	checkEnv := func(mod, _ string) bool { return mod == "env" }
	f.Fuzz(func(t *testing.T, wasm []byte) {
		res, err := instrument.Instrument(wasm, instrument.Options{MaxMemoryPages: 16, CheckAfter: checkEnv})
		if err != nil {
			return
		}
		ctx := context.Background()
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		defer rt.Close(ctx)
		if _, cerr := rt.CompileModule(ctx, wasm); cerr != nil {
			return
		}
		cm, err := rt.CompileModule(ctx, res.Module)
		if err != nil {
			t.Fatalf("instrumented module does not compile: %v", err)
		}
		// The host checks the ABI on ReadInterface's reading: it must be
		// wazero's.
		in, err := instrument.ReadInterface(res.Module)
		if err != nil {
			t.Fatalf("ReadInterface of a module wazero compiled: %v", err)
		}
		var want []string
		for _, d := range cm.ImportedFunctions() {
			mod, name, _ := d.Import()
			want = append(want, fmt.Sprintf("%s.%s%x->%x", mod, name, d.ParamTypes(), d.ResultTypes()))
		}
		exports := cm.ExportedFunctions()
		for _, f := range in.Exports {
			d, ok := exports[f.Name]
			if !ok {
				t.Fatalf("ReadInterface found an export %q wazero does not", f.Name)
			}
			want = append(want, fmt.Sprintf("%s%x->%x", f.Name, d.ParamTypes(), d.ResultTypes()))
		}
		var got []string
		for _, f := range in.Imports {
			got = append(got, fmt.Sprintf("%s.%s%x->%x", f.Module, f.Name, f.Params, f.Results))
		}
		for _, f := range in.Exports {
			got = append(got, fmt.Sprintf("%s%x->%x", f.Name, f.Params, f.Results))
		}
		if len(in.Exports) != len(exports) || !slices.Equal(got, want) {
			t.Fatalf("ReadInterface: %v (%d exports), wazero: %v (%d exports)", got, len(in.Exports), want, len(exports))
		}
		if len(in.Memories) != len(cm.ExportedMemories()) {
			t.Fatalf("ReadInterface: memories %v, wazero %d", in.Memories, len(cm.ExportedMemories()))
		}
	})
}
