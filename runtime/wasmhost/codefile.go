package wasmhost

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// A module's machine code is the largest thing a process holds for it
// (9.3 MiB for a 2.4 MB Go plugin), and wazero keeps it in anonymous
// memory: resident from the moment it is compiled or read from the cache,
// though a task runs a small part of it. Mapped from a file instead, only
// the pages that run become resident, they are clean (the kernel can drop
// them under memory pressure and read them back), and processes that run
// the same module share them. Wasmtime offers the same for its cache
// (Module::deserialize_open_file); wazero does not, so once wazero has the
// code, the Host writes it to a file beside wazero's cache and maps that
// file over it (codefile_linux.go).

// codeVersion names the folder of the code files; a change of their
// layout takes a new one.
const codeVersion = "code1"

func codePath(dir string, key modKey) string {
	return filepath.Join(dir, "sluice-"+codeVersion, fmt.Sprintf("%s-%d.code", hex.EncodeToString(key.sum[:]), key.pages))
}

// compiledCode returns the machine code wazero compiled cm to, nil when
// there is none (the interpreter) or its types look otherwise. wazero has
// no API for it, so this reaches into its unexported types (wazero 1.12:
// compiledModule.compiledEngine is the *wazevo.engine, whose
// compiledModules map, guarded by mux, holds by module ID the compiled
// module with its executables.executable); TestCompiledCode notices a
// change at a wazero upgrade.
func compiledCode(cm wazero.CompiledModule) []byte {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	mod, eng := v.Elem().FieldByName("module"), v.Elem().FieldByName("compiledEngine")
	if !mod.IsValid() || mod.Kind() != reflect.Pointer || mod.IsNil() || mod.Elem().Kind() != reflect.Struct ||
		!eng.IsValid() || eng.Kind() != reflect.Interface || eng.IsNil() {
		return nil
	}
	e := eng.Elem()
	if e.Kind() != reflect.Pointer || e.IsNil() || e.Elem().Kind() != reflect.Struct {
		return nil
	}
	id := mod.Elem().FieldByName("ID")
	mux, mods := e.Elem().FieldByName("mux"), e.Elem().FieldByName("compiledModules")
	if !id.IsValid() || !mux.IsValid() || mux.Type() != reflect.TypeFor[sync.RWMutex]() ||
		!mods.IsValid() || mods.Kind() != reflect.Map || mods.Type().Key() != id.Type() {
		return nil
	}
	mu := (*sync.RWMutex)(unsafe.Pointer(mux.UnsafeAddr()))
	mu.RLock()
	entry := mods.MapIndex(id)
	mu.RUnlock()
	// The entry's fields do not change once it is in the map.
	for _, name := range []string{"compiledModule", "executables"} {
		if !entry.IsValid() || entry.Kind() != reflect.Pointer || entry.IsNil() || entry.Elem().Kind() != reflect.Struct {
			return nil
		}
		entry = entry.Elem().FieldByName(name)
	}
	if !entry.IsValid() || entry.Kind() != reflect.Pointer || entry.IsNil() || entry.Elem().Kind() != reflect.Struct {
		return nil
	}
	exe := entry.Elem().FieldByName("executable")
	if !exe.IsValid() || exe.Type() != reflect.TypeFor[[]byte]() {
		return nil
	}
	return *(*[]byte)(unsafe.Pointer(exe.UnsafeAddr()))
}

// releaseCode lets the kernel take back the pages of c's machine code when
// it is mapped from its file: they stay in the page cache, and those that
// run again are mapped again at their first use.
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
