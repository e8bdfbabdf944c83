package wasmhost

import (
	"reflect"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// A module's machine code is the largest thing a process holds for it
// (9.3 MiB for a 2.4 MB Go plugin). Upstream wazero keeps it in anonymous
// memory: resident from the moment it is compiled or read from the cache,
// though a task runs a small part of it. Sluice's wazero (wazerofork,
// SLUICE.md) runs it from its cache entry instead, mapped from the file on
// Linux: only the pages that run become resident, they are clean (the
// kernel can drop them under memory pressure and read them back), and
// processes that run the same module share them. The Host releases the
// pages a guest's start ran once it has started (releaseCode).

// compiledCode returns the machine code wazero compiled cm to, nil when
// there is none (the interpreter) or its types look otherwise, and whether
// it runs from a file of the cache (mapped: its pages may be released).
// wazero has no API for it, so this reaches into its unexported types
// (Sluice's wazero 1.12: compiledModule.compiledEngine is the
// *wazevo.engine, whose compiledModules map, guarded by mux, holds by
// module ID the compiled module with its executables: executable and
// mapped); TestCompiledCode notices a change at a wazero upgrade.
func compiledCode(cm wazero.CompiledModule) (code []byte, mapped bool) {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	mod, eng := v.Elem().FieldByName("module"), v.Elem().FieldByName("compiledEngine")
	if !mod.IsValid() || mod.Kind() != reflect.Pointer || mod.IsNil() || mod.Elem().Kind() != reflect.Struct ||
		!eng.IsValid() || eng.Kind() != reflect.Interface || eng.IsNil() {
		return nil, false
	}
	e := eng.Elem()
	if e.Kind() != reflect.Pointer || e.IsNil() || e.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	id := mod.Elem().FieldByName("ID")
	mux, mods := e.Elem().FieldByName("mux"), e.Elem().FieldByName("compiledModules")
	if !id.IsValid() || !mux.IsValid() || mux.Type() != reflect.TypeFor[sync.RWMutex]() ||
		!mods.IsValid() || mods.Kind() != reflect.Map || mods.Type().Key() != id.Type() {
		return nil, false
	}
	mu := (*sync.RWMutex)(unsafe.Pointer(mux.UnsafeAddr()))
	mu.RLock() // the fork sets mapped under it
	defer mu.RUnlock()
	entry := mods.MapIndex(id)
	for _, name := range []string{"compiledModule", "executables"} {
		if !entry.IsValid() || entry.Kind() != reflect.Pointer || entry.IsNil() || entry.Elem().Kind() != reflect.Struct {
			return nil, false
		}
		entry = entry.Elem().FieldByName(name)
	}
	if !entry.IsValid() || entry.Kind() != reflect.Pointer || entry.IsNil() || entry.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	exe, m := entry.Elem().FieldByName("executable"), entry.Elem().FieldByName("mapped")
	if !exe.IsValid() || exe.Type() != reflect.TypeFor[[]byte]() || !m.IsValid() || m.Kind() != reflect.Bool {
		return nil, false
	}
	return *(*[]byte)(unsafe.Pointer(exe.UnsafeAddr())), m.Bool()
}

// releaseCode lets the kernel take back the pages of c's machine code when
// it runs from a file: they stay in the page cache, and those that run
// again are mapped again at their first use.
func (h *Host) releaseCode(c *compiled) {
	if c.code == nil {
		return
	}
	h.closing.RLock()
	defer h.closing.RUnlock()
	if !h.closed {
		releasePages(c.code)
	}
}
