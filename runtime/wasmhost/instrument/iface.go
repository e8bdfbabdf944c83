package instrument

import (
	"bytes"
	"fmt"
)

// Func is a function a module imports or exports, with its type as the
// binary encodes it: a byte per value type (0x7f i32, 0x7e i64, 0x7d f32,
// 0x7c f64, ...), which are wazero's api.ValueType values.
type Func struct {
	Module          string // the import's module; "" for an export
	Name            string
	Params, Results []byte
}

// Interface is what a module imports and exports.
type Interface struct {
	Imports  []Func   // the function imports, in their order
	Exports  []Func   // the exported functions, in their order
	Memories []string // the names the memories are exported under
}

// ReadInterface reads a module's function imports and exports from its
// type, import, function and export sections, without the code. The host
// checks a module against the ABI with it: wazero's ImportedFunctions and
// ExportedFunctions describe every function of the module to answer, and
// keep that for the module's life (0.28 MiB of heap for the 2.3 MB Go test
// guest).
func ReadInterface(wasm []byte) (Interface, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], header) {
		return Interface{}, ErrNotWasm
	}
	m := &module{voidType: -1}
	if err := m.split(wasm[8:]); err != nil {
		return Interface{}, err
	}
	if err := m.scan(&Result{}); err != nil {
		return Interface{}, err
	}
	var in Interface
	for _, imp := range m.imports {
		in.Imports = append(in.Imports, m.types[imp.typ].fn(imp.module, imp.name))
	}
	s := m.find(secExport)
	if s == nil {
		return in, nil
	}
	err := exports(s.body, func(name string, kind byte, idx uint32) error {
		switch {
		case kind == 0x00 && idx < uint32(m.funcImports):
			in.Exports = append(in.Exports, m.types[m.imports[idx].typ].fn("", name))
		case kind == 0x00 && idx-uint32(m.funcImports) < uint32(len(m.funcTypes)):
			in.Exports = append(in.Exports, m.types[m.funcTypes[idx-uint32(m.funcImports)]].fn("", name))
		case kind == 0x00:
			return fmt.Errorf("export section: %q exports function %d of %d", name, idx, m.funcImports+len(m.funcTypes))
		case kind == 0x02:
			in.Memories = append(in.Memories, name)
		}
		return nil
	})
	if err != nil {
		return Interface{}, err
	}
	return in, nil
}

// exports hands each entry of an export section's body to entry, which
// may stop the reading with an error. The rewrite renumbers them;
// ReadInterface lists them.
func exports(body []byte, entry func(name string, kind byte, idx uint32) error) error {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		kind := r.byte()
		idx := r.u32()
		if r.err != nil {
			break
		}
		if err := entry(name, kind, idx); err != nil {
			return err
		}
	}
	if r.err != nil {
		return fmt.Errorf("export section: %w", r.err)
	}
	return nil
}

// fn is a Func of type t. Its types are copies (t.sig is a string): a Func
// does not keep the module's bytes.
func (t funcType) fn(module, name string) Func {
	return Func{Module: module, Name: name, Params: []byte(t.sig[:t.params]), Results: []byte(t.sig[t.params+1:])}
}
