package wasmhost

import (
	"reflect"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// dropFunctionBodies frees the function bodies that wazero keeps in a
// compiled module's decoded form: a copy of every function's WebAssembly
// (1.7 MB of Go heap for a 2.4 MB Go plugin, as many small objects), read
// only while the module is validated and compiled, both of which
// CompileModule has done. Instantiation reads the other sections (data,
// globals, tables, exports), which stay. wazero has no option for it, so
// this reaches into its unexported types (wazero 1.12: compiledModule.
// module is a *wasm.Module whose CodeSection holds Body and LocalTypes);
// it changes nothing and reports false when they look otherwise, and
// TestDropFunctionBodies notices that at a wazero upgrade.
func dropFunctionBodies(cm wazero.CompiledModule) bool {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	mod := v.Elem().FieldByName("module")
	if !mod.IsValid() || mod.Kind() != reflect.Pointer || mod.IsNil() || mod.Elem().Kind() != reflect.Struct {
		return false
	}
	code := mod.Elem().FieldByName("CodeSection")
	if !code.IsValid() || code.Kind() != reflect.Slice || code.Type().Elem().Kind() != reflect.Struct {
		return false
	}
	ct := code.Type().Elem()
	body, ok1 := ct.FieldByName("Body")
	locals, ok2 := ct.FieldByName("LocalTypes")
	goFunc, ok3 := ct.FieldByName("GoFunc")
	if !ok1 || !ok2 || !ok3 || body.Type != reflect.TypeFor[[]byte]() || locals.Type.Kind() != reflect.Slice ||
		goFunc.Type.Kind() != reflect.Interface {
		return false
	}
	for i := range code.Len() {
		c := code.Index(i) // addressable: an element of the slice
		if !c.Field(goFunc.Index[0]).IsNil() {
			continue // a host function: it has no body
		}
		for _, f := range []reflect.StructField{body, locals} {
			fv := c.Field(f.Index[0])
			// Fields reached through unexported ones are read-only to
			// reflect; the pointer to the field is not.
			reflect.NewAt(fv.Type(), unsafe.Pointer(fv.UnsafeAddr())).Elem().SetZero()
		}
	}
	return true
}
