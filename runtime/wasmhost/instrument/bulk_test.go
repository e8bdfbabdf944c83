package instrument_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

const bulkPages = 80 // 5 MiB: room for several chunks

var i32x3 = wasmtest.FuncType{Params: []byte{i32, i32, i32}}

// bulkModule exports copy(d, s, n), fill(d, v, n) and churn(n, times):
// `times` fills of n bytes in a loop.
func bulkModule() []byte {
	return wasmtest.Module{MemoryPages: bulkPages, ExportMemory: true, Funcs: []wasmtest.Func{
		{Type: i32x3, Export: "copy", Body: wasmtest.Code{}.LocalGet(0).LocalGet(1).LocalGet(2).Op(0xfc, 10, 0, 0)},
		{Type: i32x3, Export: "fill", Body: wasmtest.Code{}.LocalGet(0).LocalGet(1).LocalGet(2).Op(0xfc, 11, 0)},
		{Type: wasmtest.FuncType{Params: []byte{i32, i32}}, Export: "churn", Body: wasmtest.Code{}.
			Block().Loop().
			LocalGet(1).Op(wasmtest.OpI32Eqz).BrIf(1).
			I32Const(0).I32Const(0).LocalGet(0).Op(0xfc, 11, 0).
			LocalGet(1).I32Const(1).Op(wasmtest.OpI32Sub).LocalSet(1).
			Br(0).End().End()},
	}}.Bytes()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7%251 + 1)
	}
	return b
}

// memory.copy and memory.fill become weighed, chunked helpers: their
// results must be those of the native instructions, overlap and traps
// included.
func TestBulkHelpersKeepSemantics(t *testing.T) {
	res, err := instrument.Instrument(bulkModule(), instrument.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bulk != 3 {
		t.Errorf("bulk operations weighed: %d, want 3", res.Bulk)
	}
	const size = bulkPages << 16
	const big = 3*instrument.BulkChunk + 12345
	for _, tc := range []struct {
		name    string
		fn      string
		a, b, n uint32
		trap    bool
	}{
		{"small copy", "copy", 10, 1000, 100, false},
		{"forward overlap", "copy", 100, 7000, big, false},
		{"backward overlap", "copy", 7000, 100, big, false},
		{"backward, far", "copy", 2*instrument.BulkChunk + 1, 3, big / 2, false},
		{"same place", "copy", 500, 500, big, false},
		{"empty at the end", "copy", size, size, 0, false},
		{"exactly a chunk", "copy", 0, 17, instrument.BulkChunk, false},
		{"destination outside", "copy", size - big + 1, 0, big, true},
		{"source outside", "copy", 0, size - big + 1, big, true},
		{"wrapping length", "copy", 16, 0, 0xffffffff, true},
		{"small fill", "fill", 3, 0xab, 100, false},
		{"big fill", "fill", 5, 0xcd, big, false},
		{"fill outside", "fill", size - big + 1, 1, big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := run(t, res.Module, &checker{})
			want := pattern(size)
			m.Memory().Write(0, want)
			_, err := m.ExportedFunction(tc.fn).Call(t.Context(), uint64(tc.a), uint64(tc.b), uint64(tc.n))
			if tc.trap {
				if err == nil || !contains(err.Error(), "out of bounds memory access") {
					t.Fatalf("err = %v, want an out-of-bounds trap", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if tc.fn == "copy" {
					copy(want[tc.a:tc.a+tc.n], want[tc.b:tc.b+tc.n])
				} else {
					for i := tc.a; i < tc.a+tc.n; i++ {
						want[i] = byte(tc.b)
					}
				}
			}
			got, _ := m.Memory().Read(0, size)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && got[i] == want[i] {
					i++
				}
				t.Fatalf("memory differs from the native result at byte %d (trap: %v)", i, tc.trap)
			}
		})
	}
}

// A loop of few iterations, each filling megabytes, reaches the check as
// often as the bytes it writes warrant, not once per LoopBudget
// iterations.
func TestBulkOperationsAreWeighed(t *testing.T) {
	res, err := instrument.Instrument(bulkModule(), instrument.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{}
	m := run(t, res.Module, c)
	const times = 100
	if _, err := m.ExportedFunction("churn").Call(t.Context(), 4<<20, times); err != nil {
		t.Fatal(err)
	}
	// 400 MiB of fills: one check per 2 MiB at least.
	want := times * 4 << 20 >> instrument.BulkShift / 8192
	if c.calls < want {
		t.Errorf("check called %d times for %d fills of 4 MiB, want at least %d", c.calls, times, want)
	}
	// A single operation over many chunks is checked inside.
	c2 := &checker{limit: 2}
	m2 := run(t, res.Module, c2)
	if _, err := m2.ExportedFunction("fill").Call(t.Context(), 0, 0, bulkPages<<16); err == nil {
		t.Errorf("a 5 MiB fill with a budget of two checks ran to its end")
	}
}

// Calls to a checked import are followed by a check, and a reference to it
// (for an indirect call) is a wrapper that checks too.
func TestCheckAfterImports(t *testing.T) {
	wasm := wasmtest.Module{
		Imports: []wasmtest.Import{{Module: "env", Name: "nop", Type: wasmtest.FuncType{}}},
		Funcs: []wasmtest.Func{{Type: voidToI32, Export: "twice", Body: wasmtest.Code{}.
			Call(0).Call(0).I32Const(2)}},
		MemoryPages: 1,
	}.Bytes()
	res, err := instrument.Instrument(wasm, instrument.Options{CheckAfter: func(mod, name string) bool { return mod == "env" && name == "nop" }})
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{}
	m := run(t, res.Module, c)
	if got, err := call(t, m, "twice"); err != nil || got != 2 {
		t.Fatalf("twice() = %d, %v", got, err)
	}
	if c.calls != 2 {
		t.Errorf("check called %d times after 2 calls of a checked import", c.calls)
	}
}

// withPassiveData adds a data count section and one passive data segment
// holding seg to a module assembled by wasmtest (which writes active
// segments only).
func withPassiveData(wasm, seg []byte) []byte {
	out := append([]byte{}, wasm[:8]...)
	pos := 8
	for pos < len(wasm) {
		id := wasm[pos]
		size, n := binary.Uvarint(wasm[pos+1:])
		end := pos + 1 + n + int(size)
		if id == 10 { // the data count section goes before the code
			out = append(out, 12, 1, 1)
		}
		out = append(out, wasm[pos:end]...)
		pos = end
	}
	data := wasmtest.AppendU32([]byte{1, 1}, uint32(len(seg))) // one segment, passive
	data = append(data, seg...)
	out = append(out, 11)
	out = wasmtest.AppendU32(out, uint32(len(data)))
	return append(out, data...)
}

// memory.init is weighed too: a loop of few iterations, each copying a
// large data segment into memory, reaches the check as the bytes warrant,
// and the copy itself is unchanged.
func TestMemoryInitWeighed(t *testing.T) {
	seg := pattern(256 << 10)
	wasm := withPassiveData(wasmtest.Module{MemoryPages: 8, ExportMemory: true, Funcs: []wasmtest.Func{
		{Type: wasmtest.FuncType{Params: []byte{i32}}, Export: "churn", Body: wasmtest.Code{}.
			Block().Loop().
			LocalGet(0).Op(wasmtest.OpI32Eqz).BrIf(1).
			I32Const(100).I32Const(0).I32Const(int32(len(seg))).Op(0xfc, 8, 0, 0). // memory.init 0
			LocalGet(0).I32Const(1).Op(wasmtest.OpI32Sub).LocalSet(0).
			Br(0).End().End()},
	}}.Bytes(), seg)
	res, err := instrument.Instrument(wasm, instrument.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bulk != 1 {
		t.Errorf("bulk operations weighed: %d, want 1", res.Bulk)
	}
	c := &checker{}
	m := run(t, res.Module, c)
	const times = 400
	if _, err := m.ExportedFunction("churn").Call(t.Context(), times); err != nil {
		t.Fatal(err)
	}
	if want := times * len(seg) >> instrument.BulkShift / 8192; c.calls < want {
		t.Errorf("check called %d times for %d inits of 256 KiB, want at least %d", c.calls, times, want)
	}
	if got, _ := m.Memory().Read(100, uint32(len(seg))); !bytes.Equal(got, seg) {
		t.Errorf("memory.init copied something else")
	}
}

// A checked import reached through a table (call_indirect) is checked too:
// its element-segment entry becomes a wrapper that calls check.
func TestCheckAfterIndirectImport(t *testing.T) {
	wasm := wasmtest.Module{
		Imports: []wasmtest.Import{{Module: "env", Name: "nop", Type: wasmtest.FuncType{}}},
		Funcs: []wasmtest.Func{{Type: voidToI32, Export: "twice", Body: wasmtest.Code{}.
			I32Const(0).Op(0x11, 0, 0). // call_indirect (type 0: [] -> []) table 0, element 0: env.nop
			I32Const(0).Op(0x11, 0, 0).
			I32Const(2)}},
		MemoryPages: 1,
	}.Bytes()
	// A table of one funcref, and an active element segment putting
	// function 0 (the import) at index 0.
	var out []byte
	out = append(out, wasm[:8]...)
	for pos := 8; pos < len(wasm); {
		id := wasm[pos]
		size, n := binary.Uvarint(wasm[pos+1:])
		end := pos + 1 + n + int(size)
		if id == 10 {
			out = append(out, 9, 7, 1, 0, 0x41, 0, 0x0b, 1, 0)
		}
		out = append(out, wasm[pos:end]...)
		if id == 3 {
			out = append(out, 4, 4, 1, 0x70, 0, 1)
		}
		pos = end
	}
	res, err := instrument.Instrument(out, instrument.Options{CheckAfter: func(mod, name string) bool { return mod == "env" }})
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{}
	m := run(t, res.Module, c)
	if got, err := call(t, m, "twice"); err != nil || got != 2 {
		t.Fatalf("twice() = %d, %v", got, err)
	}
	if c.calls != 2 {
		t.Errorf("check called %d times after 2 indirect calls of a checked import", c.calls)
	}
}
