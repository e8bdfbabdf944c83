// Package wasmtest helps tests of the WASM host and of WASM transforms: it
// assembles tiny modules byte by byte (for ABI edge cases no compiler would
// produce), builds Go guests on demand with GOOS=wasip1, and names the one
// on-disk compilation cache that every test binary of the repository shares.
package wasmtest

import "encoding/binary"

// Value types of the WebAssembly binary format.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
	F32 byte = 0x7d
	F64 byte = 0x7c
)

// FuncType is a function signature.
type FuncType struct {
	Params, Results []byte
}

// Import is a function import.
type Import struct {
	Module, Name string
	Type         FuncType
}

// Func is a function defined by the module. Body is its instruction
// sequence without the final `end`, which the builder appends.
type Func struct {
	Type   FuncType
	Locals []byte // one value type per local
	Body   []byte
	Export string // exported under this name when not empty
}

// Module describes a module to assemble.
type Module struct {
	Imports []Import
	Funcs   []Func
	// MemoryPages is the initial memory size; -1 means no memory at all.
	MemoryPages int
	// MaxPages, when > 0, declares a maximum.
	MaxPages int
	// ExportMemory exports the memory as "memory".
	ExportMemory bool
	// Data is copied to memory at DataOffset.
	Data       []byte
	DataOffset int
	// Globals are mutable i32 globals with these initial values.
	Globals []int32
}

// Bytes assembles the module.
func (m Module) Bytes() []byte {
	var types []FuncType
	typeIndex := func(t FuncType) int {
		for i, x := range types {
			if string(x.Params) == string(t.Params) && string(x.Results) == string(t.Results) {
				return i
			}
		}
		types = append(types, t)
		return len(types) - 1
	}
	var imports, funcs, exports, code, globals, data []byte
	for _, im := range m.Imports {
		imports = appendName(imports, im.Module)
		imports = appendName(imports, im.Name)
		imports = append(imports, 0x00)
		imports = AppendU32(imports, uint32(typeIndex(im.Type)))
	}
	nExports := 0
	for i, f := range m.Funcs {
		funcs = AppendU32(funcs, uint32(typeIndex(f.Type)))
		if f.Export != "" {
			exports = appendName(exports, f.Export)
			exports = append(exports, 0x00)
			exports = AppendU32(exports, uint32(len(m.Imports)+i))
			nExports++
		}
		var body []byte
		body = AppendU32(body, uint32(len(f.Locals)))
		for _, l := range f.Locals {
			body = append(body, 1, l)
		}
		body = append(body, f.Body...)
		body = append(body, 0x0b)
		code = AppendU32(code, uint32(len(body)))
		code = append(code, body...)
	}
	if m.ExportMemory && m.MemoryPages >= 0 {
		exports = appendName(exports, "memory")
		exports = append(exports, 0x02, 0x00)
		nExports++
	}
	for _, g := range m.Globals {
		globals = append(globals, I32, 0x01, 0x41)
		globals = AppendS32(globals, g)
		globals = append(globals, 0x0b)
	}
	var out []byte
	out = append(out, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)
	var typeSec []byte
	typeSec = AppendU32(typeSec, uint32(len(types)))
	for _, t := range types {
		typeSec = append(typeSec, 0x60)
		typeSec = AppendU32(typeSec, uint32(len(t.Params)))
		typeSec = append(typeSec, t.Params...)
		typeSec = AppendU32(typeSec, uint32(len(t.Results)))
		typeSec = append(typeSec, t.Results...)
	}
	out = appendSection(out, 1, typeSec)
	if len(m.Imports) > 0 {
		out = appendSection(out, 2, append(AppendU32(nil, uint32(len(m.Imports))), imports...))
	}
	out = appendSection(out, 3, append(AppendU32(nil, uint32(len(m.Funcs))), funcs...))
	if m.MemoryPages >= 0 {
		var mem []byte
		if m.MaxPages > 0 {
			mem = append(mem, 1, 0x01)
			mem = AppendU32(mem, uint32(m.MemoryPages))
			mem = AppendU32(mem, uint32(m.MaxPages))
		} else {
			mem = append(mem, 1, 0x00)
			mem = AppendU32(mem, uint32(m.MemoryPages))
		}
		out = appendSection(out, 5, mem)
	}
	if len(m.Globals) > 0 {
		out = appendSection(out, 6, append(AppendU32(nil, uint32(len(m.Globals))), globals...))
	}
	if nExports > 0 {
		out = appendSection(out, 7, append(AppendU32(nil, uint32(nExports)), exports...))
	}
	out = appendSection(out, 10, append(AppendU32(nil, uint32(len(m.Funcs))), code...))
	if len(m.Data) > 0 && m.MemoryPages >= 0 {
		data = append(data, 1, 0x00, 0x41)
		data = AppendS32(data, int32(m.DataOffset))
		data = append(data, 0x0b)
		data = AppendU32(data, uint32(len(m.Data)))
		data = append(data, m.Data...)
		out = appendSection(out, 11, data)
	}
	return out
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = AppendU32(out, uint32(len(content)))
	return append(out, content...)
}

func appendName(b []byte, s string) []byte {
	b = AppendU32(b, uint32(len(s)))
	return append(b, s...)
}

// AppendU32 appends v as unsigned LEB128.
func AppendU32(b []byte, v uint32) []byte {
	return binary.AppendUvarint(b, uint64(v))
}

// AppendS32 appends v as signed LEB128.
func AppendS32(b []byte, v int32) []byte { return AppendS64(b, int64(v)) }

// AppendS64 appends v as signed LEB128.
func AppendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Code is a small instruction assembler for function bodies.
type Code []byte

// Op appends raw opcode bytes.
func (c Code) Op(b ...byte) Code { return append(c, b...) }

// I32Const appends i32.const v.
func (c Code) I32Const(v int32) Code { return AppendS32(append(c, 0x41), v) }

// I64Const appends i64.const v.
func (c Code) I64Const(v int64) Code { return AppendS64(append(c, 0x42), v) }

// LocalGet appends local.get i.
func (c Code) LocalGet(i uint32) Code { return AppendU32(append(c, 0x20), i) }

// LocalSet appends local.set i.
func (c Code) LocalSet(i uint32) Code { return AppendU32(append(c, 0x21), i) }

// LocalTee appends local.tee i.
func (c Code) LocalTee(i uint32) Code { return AppendU32(append(c, 0x22), i) }

// GlobalGet appends global.get i.
func (c Code) GlobalGet(i uint32) Code { return AppendU32(append(c, 0x23), i) }

// GlobalSet appends global.set i.
func (c Code) GlobalSet(i uint32) Code { return AppendU32(append(c, 0x24), i) }

// Call appends call f.
func (c Code) Call(f uint32) Code { return AppendU32(append(c, 0x10), f) }

// Br appends br depth.
func (c Code) Br(depth uint32) Code { return AppendU32(append(c, 0x0c), depth) }

// BrIf appends br_if depth.
func (c Code) BrIf(depth uint32) Code { return AppendU32(append(c, 0x0d), depth) }

// Loop appends loop with an empty block type.
func (c Code) Loop() Code { return append(c, 0x03, 0x40) }

// Block appends block with an empty block type.
func (c Code) Block() Code { return append(c, 0x02, 0x40) }

// If appends if with an empty block type.
func (c Code) If() Code { return append(c, 0x04, 0x40) }

// End appends end.
func (c Code) End() Code { return append(c, 0x0b) }

// I32Load appends i32.load with alignment 2 and offset off.
func (c Code) I32Load(off uint32) Code { return AppendU32(append(c, 0x28, 2), off) }

// I32Store appends i32.store with alignment 2 and offset off.
func (c Code) I32Store(off uint32) Code { return AppendU32(append(c, 0x36, 2), off) }

// I32Load8U appends i32.load8_u with offset off.
func (c Code) I32Load8U(off uint32) Code { return AppendU32(append(c, 0x2d, 0), off) }

// I32Store8 appends i32.store8 with offset off.
func (c Code) I32Store8(off uint32) Code { return AppendU32(append(c, 0x3a, 0), off) }

// I64Store appends i64.store with alignment 3 and offset off.
func (c Code) I64Store(off uint32) Code { return AppendU32(append(c, 0x37, 3), off) }

// Opcodes without immediates used by tests.
const (
	OpUnreachable = 0x00
	OpReturn      = 0x0f
	OpDrop        = 0x1a
	OpI32Eqz      = 0x45
	OpI32Eq       = 0x46
	OpI32Ne       = 0x47
	OpI32LtU      = 0x49
	OpI32GeU      = 0x4f
	OpI32Add      = 0x6a
	OpI32Sub      = 0x6b
	OpI32Mul      = 0x6c
	OpI32And      = 0x71
	OpI32Xor      = 0x73
	OpI32Shl      = 0x74
	OpI64ExtendU  = 0xad
	OpI64Shl      = 0x86
	OpI64Or       = 0x84
	OpMemoryGrow  = 0x40
)
