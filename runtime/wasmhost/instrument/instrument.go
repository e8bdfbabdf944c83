// Package instrument rewrites a WebAssembly module so that the host can stop
// it: every loop iteration and every entry into a function that loops or
// recurses pays a small countdown, and when a countdown runs out the module
// calls the host import CheckModule.CheckName, which checks the call's time
// budget, lets the Go scheduler run, and traps when the budget is spent.
//
// Why a rewrite: code compiled by wazero cannot be preempted, and wazero's
// own interruption (WithCloseOnContextDone) calls back into Go at every loop
// header, which costs 10-20x on loop-heavy guests. Here the hot path is a
// register decrement and a predicted branch per loop iteration; the host is
// reached only once every LoopBudget iterations or CallBudget calls.
//
// What is inserted, with c a new i32 local of every function and fuel a new
// mutable i32 global:
//
//	function entry (functions that contain a loop or sit on a call cycle):
//	  global.get fuel; i32.const 1; i32.sub; local.tee c; global.set fuel
//	  local.get c; i32.eqz; if; i32.const CallBudget; global.set fuel; call check; end
//	  i32.const LoopBudget; local.set c            (functions with loops only)
//	after each `loop <blocktype>`:
//	  local.get c; i32.const 1; i32.sub; local.tee c; i32.eqz
//	  if; i32.const LoopBudget; local.set c; call check; end
//
//	before each bulk operation (memory.init, table.init/copy/fill), whose
//	length is on top of the stack:
//	  call weigh                 (fuel -= len >> BulkShift + 1; check when spent)
//	each memory.copy and memory.fill:
//	  call copy / call fill      (the same, in weighed chunks of BulkChunk)
//	after each call to an import named by Options.CheckAfter:
//	  call check
//
// weigh, copy, fill and one wrapper per CheckAfter import (which calls it,
// then check, and replaces it in tables and ref.func) are added after the
// defined functions, so they need no renumbering.
//
// The check import becomes the last imported function, so every defined
// function index moves up by one: calls, ref.func, element segments,
// exports and the start function are renumbered, and the "name" custom
// section (whose indexes would be stale) is dropped.
package instrument

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The import the instrumented module calls when a countdown runs out. The
// host must provide it as a function taking and returning nothing.
const (
	CheckModule = "sluice_rt"
	CheckName   = "check"
)

// Options tunes the rewrite.
type Options struct {
	// LoopBudget is how many iterations of one loop run between two host
	// checks (default 8192).
	LoopBudget int32
	// CallBudget is how many entries into looping or recursive functions run
	// between two host checks (default 8192).
	CallBudget int32
	// MaxMemoryPages, when > 0, caps the module's memory: its declared
	// maximum becomes min(declared, MaxMemoryPages). A module whose initial
	// memory exceeds the cap is rejected.
	MaxMemoryPages uint32
	// CheckAfter names the imported functions whose time counts against
	// the budget: every call to one of them is followed by a call to check,
	// and every reference to one (ref.func, element segments) is replaced
	// by a defined wrapper that calls it and then check, so an indirect
	// call cannot dodge it. Use it for host functions whose cost grows with
	// their arguments (WASI's random_get, fd_write, poll_oneoff): a loop
	// reaches check only every LoopBudget iterations, and LoopBudget slow
	// host calls can last minutes. nil: no import is checked.
	CheckAfter func(module, name string) bool
	// globalLoops counts loop iterations in the fuel global instead of a
	// local (measured alternative; see BenchmarkSpin).
	globalLoops bool
}

// Bulk operations are weighed by their length: BulkShift is log2 of the
// bytes (or table elements) that cost one unit of fuel, as much as one
// entry into a looping function. A check therefore comes at least every
// CallBudget << BulkShift bytes of bulk work (2 MiB by default: about
// 100-400 microseconds), however few the operations or loop iterations.
// memory.copy and memory.fill longer than BulkChunk run in chunks of
// BulkChunk bytes, so that a single operation over gigabytes is stopped
// too.
const (
	BulkShift = 8
	BulkChunk = 1 << 20
)

// Result describes what the rewrite found.
type Result struct {
	// Module is the instrumented module.
	Module []byte
	// Funcs is the number of defined functions; Checked how many got an
	// entry check; Loops how many loop headers got a check; Bulk how many
	// bulk operations are weighed by their length.
	Funcs, Checked, Loops, Bulk int
	// MemoryMin and MemoryMax are the memory's pages after the cap
	// (MemoryMax 0 with HasMemory false: the module has no memory).
	MemoryMin, MemoryMax uint32
	HasMemory            bool
}

// ErrNotWasm reports input that is not a WebAssembly binary module.
var ErrNotWasm = errors.New("not a WebAssembly module (missing the \\0asm header)")

var header = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order ranks known sections in the order the binary format requires.
var order = map[byte]int{secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13}

type section struct {
	id   byte
	name string // custom sections
	body []byte
}

type funcType struct {
	params, results int
	sig             string // the encoded parameter and result types
}

type funcImport struct {
	module, name string
	typ          uint32
}

// module is the parse state the rewrite needs.
type module struct {
	sections    []section
	types       []funcType
	voidType    int // index of [] -> [], -1 when absent
	funcImports int
	imports     []funcImport // the function imports, by index
	globals     int          // imported + defined
	funcTypes   []uint32
}

// Instrument rewrites wasm as the package doc describes.
func Instrument(wasm []byte, opt Options) (Result, error) {
	if opt.LoopBudget <= 0 {
		opt.LoopBudget = 8192
	}
	if opt.CallBudget <= 0 {
		opt.CallBudget = 8192
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], header[:4]) {
		return Result{}, ErrNotWasm
	}
	if !bytes.Equal(wasm[4:8], header[4:8]) {
		return Result{}, fmt.Errorf("unsupported WebAssembly binary version %d (want 1: core modules; components are not supported)", wasm[4])
	}
	m := &module{voidType: -1}
	if err := m.split(wasm[8:]); err != nil {
		return Result{}, err
	}
	if err := m.checkDeclared(); err != nil {
		return Result{}, err
	}
	var res Result
	if err := m.scan(&res); err != nil {
		return Result{}, err
	}
	out, err := m.rewrite(opt, &res)
	if err != nil {
		return Result{}, err
	}
	res.Module = out
	return res, nil
}

// Check refuses a module a decoder should not be handed (as Instrument
// does, without rewriting): sections that overrun the module, and vectors
// declaring more entries than their section holds. The host runs it on a
// rewritten module it reads back from its cache, which a crash or a full
// disk may have damaged.
func Check(wasm []byte) error {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], header) {
		return ErrNotWasm
	}
	m := &module{voidType: -1}
	if err := m.split(wasm[8:]); err != nil {
		return err
	}
	return m.checkDeclared()
}

func (m *module) split(b []byte) error {
	r := &reader{b: b}
	last := 0
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return fmt.Errorf("section %d: %w", id, r.err)
		}
		s := section{id: id, body: body}
		if id == secCustom {
			nr := &reader{b: body}
			s.name = nr.name()
			if nr.err != nil {
				return fmt.Errorf("custom section: %w", nr.err)
			}
		} else {
			rank, ok := order[id]
			if !ok {
				return fmt.Errorf("unknown section id %d", id)
			}
			if rank <= last {
				return fmt.Errorf("section %d out of order or repeated", id)
			}
			last = rank
		}
		m.sections = append(m.sections, s)
	}
	return nil
}

func (m *module) find(id byte) *section {
	for i := range m.sections {
		if m.sections[i].id == id {
			return &m.sections[i]
		}
	}
	return nil
}

// scan reads the type, import, function, global and memory sections.
func (m *module) scan(res *Result) error {
	if s := m.find(secType); s != nil {
		r := &reader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			if form := r.byte(); form != 0x60 {
				return fmt.Errorf("type section: unsupported type form 0x%02x", form)
			}
			np := r.u32()
			ps := valueTypes(r, np)
			nr := r.u32()
			rs := valueTypes(r, nr)
			if np == 0 && nr == 0 && m.voidType < 0 {
				m.voidType = int(i)
			}
			m.types = append(m.types, funcType{int(np), int(nr), sigOf(ps, rs)})
		}
		if r.err != nil {
			return fmt.Errorf("type section: %w", r.err)
		}
		// The rewrite copies the section's bytes after the count: they must
		// be the n types read, nothing that wazero would read differently.
		if !r.done() {
			return fmt.Errorf("type section: %d bytes after the last of %d types", len(r.b)-r.pos, n)
		}
	}
	if s := m.find(secImport); s != nil {
		r := &reader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			mod, name := r.name(), r.name()
			switch kind := r.byte(); kind {
			case 0x00:
				typ := r.u32()
				if r.err == nil && typ >= uint32(len(m.types)) { // compared as uint32: int(typ) is negative past 2^31 on 32-bit platforms
					return fmt.Errorf("import section: %s.%s has unknown type %d", mod, name, typ)
				}
				m.imports = append(m.imports, funcImport{mod, name, typ})
				m.funcImports++
			case 0x01:
				r.byte()
				limits(r)
			case 0x02:
				limits(r)
				res.HasMemory = true
				return fmt.Errorf("module imports its memory (%s.%s); a transform must define its own", mod, name)
			case 0x03:
				r.byte()
				r.byte()
				m.globals++
			case 0x04:
				r.byte()
				r.u32()
			default:
				return fmt.Errorf("import section: unknown import kind 0x%02x", kind)
			}
		}
		if r.err != nil {
			return fmt.Errorf("import section: %w", r.err)
		}
	}
	if s := m.find(secFunction); s != nil {
		r := &reader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			t := r.u32()
			if t >= uint32(len(m.types)) {
				return fmt.Errorf("function section: function %d has unknown type %d", i, t)
			}
			m.funcTypes = append(m.funcTypes, t)
		}
		if r.err != nil {
			return fmt.Errorf("function section: %w", r.err)
		}
	}
	if s := m.find(secGlobal); s != nil {
		r := &reader{b: s.body}
		n := r.u32()
		m.globals += int(n)
	}
	res.Funcs = len(m.funcTypes)
	return nil
}

func sigOf(params, results []byte) string { return string(params) + "|" + string(results) }

// valueTypes reads n value types of one byte each: the numbers, v128, and
// the reference types a module can use without the typed-references and GC
// proposals (funcref, externref, exnref), which Sluice does not enable.
// Their (ref null? ht) types take more bytes, which would make the module
// read differently here and in wazero: a 33-byte module whose type section wazero then read
// as declaring four billion results made it ask for 33 GB and crashed the
// process (found by FuzzInstrument).
func valueTypes(r *reader, n uint32) []byte {
	b := r.bytes(int(n)) // past 2^31 int(n) is negative on 32-bit platforms: refused as short too
	for _, t := range b {
		if !oneByteValueType(t) {
			r.fail(fmt.Errorf("unsupported value type 0x%02x (typed function references and GC types are not enabled)", t))
			return nil
		}
	}
	return b
}

func oneByteValueType(t byte) bool {
	switch t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
		return true
	}
	return false
}

func limits(r *reader) (min, max uint32, hasMax bool) {
	flags := r.byte()
	min = r.u32()
	if flags&1 != 0 {
		max = r.u32()
		hasMax = true
	}
	return
}

// rewrite produces the instrumented module.
func (m *module) rewrite(opt Options, res *Result) ([]byte, error) {
	if len(m.funcTypes) > 0 && m.find(secCode) == nil {
		return nil, errors.New("module declares functions but has no code section")
	}
	bodies, err := m.analyze()
	if err != nil {
		return nil, err
	}
	var addTypes []string
	typeOf := func(sig string) uint32 {
		for i, t := range m.types {
			if t.sig == sig {
				return uint32(i)
			}
		}
		for i, t := range addTypes {
			if t == sig {
				return uint32(len(m.types) + i)
			}
		}
		addTypes = append(addTypes, sig)
		return uint32(len(m.types) + len(addTypes) - 1)
	}
	p := &plan{opt: opt, check: uint32(m.funcImports), fuel: uint32(m.globals)}
	checkType := typeOf(sigOf(nil, nil))
	// Functions added after the defined ones (no renumbering needed):
	// wrappers of checked imports, then the bulk helpers.
	next := p.check + 1 + uint32(len(m.funcTypes))
	var addFuncs []uint32 // their type indexes
	var addBodies [][]byte
	p.wrapper = map[uint32]uint32{}
	if opt.CheckAfter != nil {
		for i, im := range m.imports {
			if !opt.CheckAfter(im.module, im.name) {
				continue
			}
			p.wrapper[uint32(i)] = next
			next++
			addFuncs = append(addFuncs, im.typ)
			addBodies = append(addBodies, wrapperBody(uint32(m.types[im.typ].params), uint32(i), p.check))
		}
	}
	var bulk, bulkMem bool
	for i := range bodies {
		bulk = bulk || bodies[i].bulk
		bulkMem = bulkMem || bodies[i].bulkMem
	}
	if bulk {
		p.weigh = next
		next++
		addFuncs = append(addFuncs, typeOf(sigOf([]byte{i32}, []byte{i32})))
		addBodies = append(addBodies, weighBody(p))
	}
	if bulkMem {
		t := typeOf(sigOf([]byte{i32, i32, i32}, nil))
		p.copy, p.fill = next, next+1
		addFuncs = append(addFuncs, t, t)
		addBodies = append(addBodies, copyBody(p), fillBody(p))
	}
	checkFunc := p.check
	remap := func(idx uint32) uint32 {
		if idx >= checkFunc {
			return idx + 1
		}
		return idx
	}
	// remapRef renumbers a function reference: a checked import is
	// replaced by its wrapper.
	remapRef := func(idx uint32) uint32 {
		if w, ok := p.wrapper[idx]; ok {
			return w
		}
		return remap(idx)
	}
	p.remap, p.remapRef = remap, remapRef

	replaced := map[byte][]byte{}
	// Type section: add the types of check and of the added functions when
	// missing.
	{
		var b []byte
		if s := m.find(secType); s != nil {
			r := &reader{b: s.body}
			n := r.u32()
			b = appendU32(b, n+uint32(len(addTypes)))
			b = append(b, s.body[r.pos:]...)
		} else {
			b = appendU32(b, uint32(len(addTypes)))
		}
		for _, sig := range addTypes {
			ps, rs, _ := strings.Cut(sig, "|")
			b = append(b, 0x60)
			b = appendU32(b, uint32(len(ps)))
			b = append(b, ps...)
			b = appendU32(b, uint32(len(rs)))
			b = append(b, rs...)
		}
		replaced[secType] = b
	}
	// Function section: declare the added functions.
	if len(addFuncs) > 0 {
		var b []byte
		if s := m.find(secFunction); s != nil {
			r := &reader{b: s.body}
			n := r.u32()
			b = appendU32(b, n+uint32(len(addFuncs)))
			b = append(b, s.body[r.pos:]...)
		} else {
			b = appendU32(b, uint32(len(addFuncs)))
		}
		for _, t := range addFuncs {
			b = appendU32(b, t)
		}
		replaced[secFunction] = b
	}
	// Import section: append the check import.
	{
		var b []byte
		if s := m.find(secImport); s != nil {
			r := &reader{b: s.body}
			n := r.u32()
			b = appendU32(b, n+1)
			b = append(b, s.body[r.pos:]...)
		} else {
			b = appendU32(b, 1)
		}
		b = appendName(b, CheckModule)
		b = appendName(b, CheckName)
		b = append(b, 0x00)
		b = appendU32(b, checkType)
		replaced[secImport] = b
	}
	// Table section: cap the maximums.
	if s := m.find(secTable); s != nil {
		replaced[secTable] = capTables(s.body)
	}
	// Memory section: cap the maximum.
	if s := m.find(secMemory); s != nil {
		r := &reader{b: s.body}
		n := r.u32()
		if n > 1 {
			return nil, fmt.Errorf("module defines %d memories; one is supported", n)
		}
		if n == 1 {
			flags := r.byte()
			if flags&^1 != 0 {
				return nil, fmt.Errorf("memory uses unsupported flags 0x%02x (shared or 64-bit memory)", flags)
			}
			min := r.u32()
			var max uint32 = 65536
			if flags&1 != 0 {
				max = r.u32()
			}
			if r.err != nil {
				return nil, fmt.Errorf("memory section: %w", r.err)
			}
			if opt.MaxMemoryPages > 0 {
				if min > opt.MaxMemoryPages {
					return nil, &MemoryError{InitialPages: min, LimitPages: opt.MaxMemoryPages}
				}
				max = minU32(max, opt.MaxMemoryPages)
			}
			res.HasMemory, res.MemoryMin, res.MemoryMax = true, min, max
			var b []byte
			b = append(b, 1, 0x01)
			b = appendU32(b, min)
			b = appendU32(b, max)
			replaced[secMemory] = b
		}
	}
	// Global section: append the fuel global.
	{
		var b []byte
		if s := m.find(secGlobal); s != nil {
			r := &reader{b: s.body}
			n := r.u32()
			b = appendU32(b, n+1)
			for i := uint32(0); i < n && r.err == nil; i++ {
				b = append(b, r.bytes(2)...) // value type, mutability
				b, err = copyExpr(b, r, remapRef)
				if err != nil {
					return nil, fmt.Errorf("global %d: %w", i, err)
				}
			}
			if r.err != nil {
				return nil, fmt.Errorf("global section: %w", r.err)
			}
		} else {
			b = appendU32(b, 1)
		}
		b = append(b, 0x7f, 0x01, 0x41)
		b = appendS32(b, opt.CallBudget)
		b = append(b, 0x0b)
		replaced[secGlobal] = b
	}
	// Export section: renumber functions.
	if s := m.find(secExport); s != nil {
		var entries []byte
		n := uint32(0)
		err := exports(s.body, func(name string, kind byte, idx uint32) error {
			if kind == 0x00 {
				idx = remap(idx)
			}
			entries = appendName(entries, name)
			entries = append(entries, kind)
			entries = appendU32(entries, idx)
			n++
			return nil
		})
		if err != nil {
			return nil, err
		}
		replaced[secExport] = append(appendU32(nil, n), entries...)
	}
	if s := m.find(secStart); s != nil {
		r := &reader{b: s.body}
		idx := r.u32()
		if r.err != nil {
			return nil, fmt.Errorf("start section: %w", r.err)
		}
		replaced[secStart] = appendU32(nil, remap(idx))
	}
	if s := m.find(secElement); s != nil {
		b, err := rewriteElements(s.body, remapRef)
		if err != nil {
			return nil, fmt.Errorf("element section: %w", err)
		}
		replaced[secElement] = b
	}
	// Code section.
	if s := m.find(secCode); s != nil || len(addBodies) > 0 {
		size := 0
		if s != nil {
			size = len(s.body)
		}
		b := appendU32(make([]byte, 0, size+size/8), uint32(len(bodies)+len(addBodies)))
		var tmp []byte
		for i := range bodies {
			fb := &bodies[i]
			tmp = m.rewriteBody(tmp[:0], fb, p, res)
			b = appendU32(b, uint32(len(tmp)))
			b = append(b, tmp...)
		}
		for _, body := range addBodies {
			b = appendU32(b, uint32(len(body)))
			b = append(b, body...)
		}
		replaced[secCode] = b
	}

	// Data section: merge Go's many small segments. Not with a data count
	// section: memory.init and data.drop may then name segments by index.
	if s := m.find(secData); s != nil && m.find(secDataCount) == nil {
		if b := mergeData(s.body); b != nil {
			replaced[secData] = b
		}
	}

	// Assemble, inserting sections that did not exist at their place.
	out := make([]byte, 0, len(m.sections)*8+sizeOf(m.sections)+sizeOf(m.sections)/8+64)
	out = append(out, header...)
	pending := []byte{secType, secImport, secFunction, secGlobal, secCode}
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	flushBefore := func(rank int) {
		for len(pending) > 0 && order[pending[0]] < rank {
			id := pending[0]
			pending = pending[1:]
			if b, ok := replaced[id]; ok && m.find(id) == nil {
				emit(id, b)
			}
		}
	}
	for _, s := range m.sections {
		if s.id == secCustom {
			if s.name == "name" {
				continue
			}
			emit(secCustom, s.body)
			continue
		}
		flushBefore(order[s.id])
		if b, ok := replaced[s.id]; ok {
			emit(s.id, b)
		} else {
			emit(s.id, s.body)
		}
	}
	flushBefore(1 << 30)
	return out, nil
}

// MemoryError reports a module whose initial memory exceeds the limit.
type MemoryError struct {
	InitialPages, LimitPages uint32
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("module needs %d KiB of memory at start, more than the memory limit of %d KiB; raise memory_limit",
		e.InitialPages*64, e.LimitPages*64)
}

func sizeOf(ss []section) int {
	n := 0
	for _, s := range ss {
		n += len(s.body) + 6
	}
	return n
}

func minU32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

// copyExpr copies a constant expression up to and including its `end`,
// renumbering ref.func.
func copyExpr(dst []byte, r *reader, remap func(uint32) uint32) ([]byte, error) {
	depth := 0
	for r.err == nil {
		start := r.pos
		if r.pos < len(r.b) && r.b[r.pos] == 0x0b {
			r.pos++
			dst = append(dst, 0x0b)
			if depth == 0 {
				return dst, nil
			}
			depth--
			continue
		}
		in := next(r)
		if r.err != nil {
			break
		}
		if in.kind == kindRefFunc {
			dst = append(dst, 0xd2)
			dst = appendU32(dst, remap(in.idx))
			continue
		}
		dst = append(dst, r.b[start:r.pos]...)
	}
	if r.err == nil {
		r.err = errEOF
	}
	return dst, r.err
}

func rewriteElements(body []byte, remap func(uint32) uint32) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	b := appendU32(nil, n)
	var err error
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		b = appendU32(b, flags)
		if flags > 7 {
			return nil, fmt.Errorf("segment %d: unknown flags %d", i, flags)
		}
		if flags&1 == 0 { // active: offset expression (with a table index when flags&2)
			if flags&2 != 0 {
				b = appendU32(b, r.u32())
			}
			if b, err = copyExpr(b, r, remap); err != nil {
				return nil, err
			}
		}
		exprs := flags&4 != 0
		if flags&3 != 0 { // elemkind (funcref = 0) or reftype
			b = append(b, r.byte())
		}
		cnt := r.u32()
		b = appendU32(b, cnt)
		for j := uint32(0); j < cnt && r.err == nil; j++ {
			if exprs {
				if b, err = copyExpr(b, r, remap); err != nil {
					return nil, err
				}
			} else {
				b = appendU32(b, remap(r.u32()))
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return b, nil
}
