package instrument_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
	wt "github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

func TestReadInterface(t *testing.T) {
	// f64 (0x7c) is '|', the separator of the parse's type keys: these
	// types must still come apart as they are.
	mod := wt.Module{
		Imports: []wt.Import{
			{Module: "sluice", Name: "metric", Type: wt.FuncType{Params: []byte{wt.I32, wt.I32, wt.I32, wt.F64}}},
			{Module: "wasi_snapshot_preview1", Name: "clock", Type: wt.FuncType{Params: []byte{wt.F64, wt.F64}}},
			{Module: "env", Name: "f", Type: wt.FuncType{Params: []byte{wt.F64}, Results: []byte{wt.F64}}},
		},
		Funcs: []wt.Func{
			{Type: wt.FuncType{Results: []byte{wt.F64, wt.F64}}, Export: "pair", Body: wt.Code{}.Op(0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x44, 0, 0, 0, 0, 0, 0, 0, 0)},
			{Type: wt.FuncType{}, Body: wt.Code{}},
			{Type: wt.FuncType{Params: []byte{wt.I32, wt.I64}, Results: []byte{wt.I64}}, Export: "mix", Body: wt.Code{}.LocalGet(1)},
		},
		MemoryPages:  1,
		ExportMemory: true,
	}
	wasm := mod.Bytes()
	in, err := instrument.ReadInterface(wasm)
	if err != nil {
		t.Fatal(err)
	}
	show := func(fs []instrument.Func) string {
		var s []string
		for _, f := range fs {
			s = append(s, fmt.Sprintf("%s.%s%x->%x", f.Module, f.Name, f.Params, f.Results))
		}
		return strings.Join(s, " ")
	}
	if got, want := show(in.Imports), "sluice.metric7f7f7f7c-> wasi_snapshot_preview1.clock7c7c-> env.f7c->7c"; got != want {
		t.Errorf("imports: %s, want %s", got, want)
	}
	if got, want := show(in.Exports), ".pair->7c7c .mix7f7e->7e"; got != want {
		t.Errorf("exports: %s, want %s", got, want)
	}
	if fmt.Sprint(in.Memories) != "[memory]" {
		t.Errorf("memories: %v", in.Memories)
	}
	// The interface keeps none of the module's bytes.
	clear(wasm)
	if got := show(in.Imports) + " " + show(in.Exports); got != "sluice.metric7f7f7f7c-> wasi_snapshot_preview1.clock7c7c-> env.f7c->7c .pair->7c7c .mix7f7e->7e" {
		t.Errorf("after the module's bytes changed: %s", got)
	}
}

func TestReadInterfaceRejects(t *testing.T) {
	if _, err := instrument.ReadInterface([]byte("not wasm at all")); !errors.Is(err, instrument.ErrNotWasm) {
		t.Errorf("not a module: %v", err)
	}
	// An export of a function the module does not have: a type section
	// ([] -> []), no functions, and an export of function 5.
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0,
		7, 5, 1, 1, 'f', 0, 5}
	if _, err := instrument.ReadInterface(wasm); err == nil || !strings.Contains(err.Error(), `"f" exports function 5 of 0`) {
		t.Errorf("export of a missing function: %v", err)
	}
	// An export section cut short.
	wasm = []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 7, 3, 1, 1, 'f'}
	if _, err := instrument.ReadInterface(wasm); err == nil || !strings.Contains(err.Error(), "export section") {
		t.Errorf("export section cut short: %v", err)
	}
}

// Indexes past 2^31 read as negative ints on 32-bit platforms (armv7 is a
// release platform): each must be refused, never used.
func TestHugeIndexesRefused(t *testing.T) {
	const ff = 0xff
	hdr := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	typ := []byte{1, 4, 1, 0x60, 0, 0} // type section: [] -> []
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"function of type 2^32-1", append(append(append([]byte{}, hdr...), typ...),
			3, 6, 1, ff, ff, ff, ff, 0x0f), "function 0 has unknown type 4294967295"},
		{"import of type 2^32-1", append(append(append([]byte{}, hdr...), typ...),
			2, 11, 1, 1, 'm', 1, 'f', 0, ff, ff, ff, ff, 0x0f), "m.f has unknown type 4294967295"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := instrument.Instrument(c.wasm, instrument.Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Instrument: %v, want %q", err, c.want)
			}
			if _, err := instrument.ReadInterface(c.wasm); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReadInterface: %v, want %q", err, c.want)
			}
		})
	}
	// An export of function 2^32-1 and a call of it: refused or ignored.
	export := append(append(append([]byte{}, hdr...), typ...), 7, 9, 1, 1, 'f', 0, ff, ff, ff, ff, 0x0f)
	if _, err := instrument.ReadInterface(export); err == nil || !strings.Contains(err.Error(), `"f" exports function 4294967295 of 0`) {
		t.Errorf("export: %v", err)
	}
	call := append(append(append([]byte{}, hdr...), typ...),
		3, 2, 1, 0, // one function of type 0
		10, 13, 1, 11, 0, 0x03, 0x40, 0x10, ff, ff, ff, ff, 0x0f, 0x0b, 0x0b) // code: loop { call 2^32-1 } end
	if _, err := instrument.Instrument(call, instrument.Options{}); err != nil && !strings.Contains(err.Error(), "function") {
		t.Errorf("call: %v", err)
	}
}

// FuzzReadInterface: on any input, ReadInterface returns an interface or
// an error, never panics (the host calls it on modules wazero compiled;
// FuzzInstrument compares its answers with wazero's there).
func FuzzReadInterface(f *testing.F) {
	f.Add(wt.Module{MemoryPages: 1, ExportMemory: true, Funcs: []wt.Func{{Export: "f", Body: wt.Code{}}}}.Bytes())
	f.Add(wt.ABIModule{PerRecord: true}.Bytes())
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 7, 9, 1, 1, 'f', 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, wasm []byte) {
		in, err := instrument.ReadInterface(wasm)
		if err != nil {
			return
		}
		for _, fn := range append(in.Imports, in.Exports...) {
			if len(fn.Params) > len(wasm) || len(fn.Results) > len(wasm) {
				t.Fatalf("%s.%s: more value types than the module has bytes", fn.Module, fn.Name)
			}
		}
	})
}
