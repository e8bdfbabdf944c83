package instrument

import "fmt"

// body is one function body as analysis found it.
type body struct {
	raw       []byte // the whole body: locals then code
	codeStart int    // offset of the first instruction in raw
	numLocals uint32 // params plus declared locals
	localDecl []byte // the raw local declarations (without their count)
	nDecl     uint32
	hasLoop   bool
	indirect  bool
	callees   []uint32 // defined-function indexes (0-based among defined)
	needEntry bool
	cyclic    bool
	bulk      bool // has a bulk operation (weighed)
	bulkMem   bool // has a memory.copy or memory.fill on memory 0 (chunked)
}

// analyze decodes every body once to find loops and the call graph, then
// marks the functions that need an entry check: those with a loop (an
// inner loop restarts its countdown on every call, so calls must count
// too) and those on a call cycle (recursion without loops).
func (m *module) analyze() ([]body, error) {
	s := m.find(secCode)
	if s == nil {
		return nil, nil
	}
	r := &reader{b: s.body}
	n := r.u32()
	if int(n) != len(m.funcTypes) {
		return nil, fmt.Errorf("code section has %d bodies for %d functions", n, len(m.funcTypes))
	}
	bodies := make([]body, n)
	addressTaken := map[uint32]bool{}
	imp := uint32(m.funcImports)
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		raw := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("code section: %w", r.err)
		}
		b := &bodies[i]
		b.raw = raw
		br := &reader{b: raw}
		b.nDecl = br.u32()
		declStart := br.pos
		locals := uint64(m.types[m.funcTypes[i]].params)
		for j := uint32(0); j < b.nDecl && br.err == nil; j++ {
			locals += uint64(br.u32())
			if t := br.byte(); br.err == nil && !oneByteValueType(t) {
				return nil, fmt.Errorf("function %d: local of unsupported value type 0x%02x (typed function references and GC types are not enabled)", imp+i, t)
			}
		}
		if locals >= 50000 {
			return nil, fmt.Errorf("function %d declares %d locals (at most 50000)", imp+i, locals)
		}
		b.numLocals = uint32(locals)
		b.localDecl = raw[declStart:br.pos]
		b.codeStart = br.pos
		for !br.done() {
			at := br.pos
			in := next(br)
			// The rewrite adds a local, a global and functions after the
			// module's own: an index past the module's own names one of
			// them once rewritten (a loop could reset its own countdown),
			// and wazero validates only the rewritten module. Such a
			// module is invalid as written: refuse it here.
			if err := m.checkIndex(in, b.numLocals, imp+n); err != nil {
				return nil, fmt.Errorf("function %d, byte %d of its body: %w", imp+i, at, err)
			}
			switch in.kind {
			case kindLoop:
				b.hasLoop = true
			case kindCall:
				if in.idx >= imp {
					b.callees = append(b.callees, in.idx-imp)
				}
			case kindRefFunc:
				if in.idx >= imp {
					addressTaken[in.idx-imp] = true
				}
			case kindIndirect:
				b.indirect = true
			case kindBulk:
				b.bulk = true
				if in.mem0 {
					b.bulkMem = true
				}
			}
		}
		if br.err != nil {
			return nil, fmt.Errorf("function %d: %w", imp+i, br.err)
		}
	}
	if es := m.find(secElement); es != nil {
		var bad error
		if err := elementFuncs(es.body, func(idx uint32) {
			if idx >= imp+n && bad == nil {
				bad = fmt.Errorf("element section: function %d does not exist (the module has %d)", idx, imp+n)
			}
			if idx >= imp {
				addressTaken[idx-imp] = true
			}
		}); err != nil {
			return nil, fmt.Errorf("element section: %w", err)
		}
		if bad != nil {
			return nil, bad
		}
	}
	if gs := m.find(secGlobal); gs != nil {
		r := &reader{b: gs.body}
		count := r.u32()
		var bad error
		for g := uint32(0); g < count && r.err == nil && bad == nil; g++ {
			r.bytes(2) // value type, mutability
			skipExpr(r, func(idx uint32) {
				if idx >= imp+n && bad == nil {
					bad = fmt.Errorf("global %d: function %d does not exist (the module has %d)", g, idx, imp+n)
				}
				if idx >= imp {
					addressTaken[idx-imp] = true
				}
			})
		}
		if bad != nil {
			return nil, bad
		}
		if r.err != nil {
			return nil, fmt.Errorf("global section: %w", r.err)
		}
	}
	var targets []uint32
	for f := range addressTaken {
		if f < n {
			targets = append(targets, f)
		}
	}
	cyclic := cycles(bodies, targets)
	for i := range bodies {
		bodies[i].needEntry = bodies[i].hasLoop || cyclic[i]
		bodies[i].cyclic = cyclic[i]
	}
	return bodies, nil
}

// checkIndex refuses an instruction naming a local, a global or a function
// the module does not have (locals: params plus declared; funcs: imported
// plus defined).
func (m *module) checkIndex(in instr, locals, funcs uint32) error {
	switch {
	case in.kind == kindLocal && in.idx >= locals:
		return fmt.Errorf("local %d does not exist (the function has %d)", in.idx, locals)
	case in.kind == kindGlobal && in.idx >= uint32(m.globals):
		return fmt.Errorf("global %d does not exist (the module has %d)", in.idx, m.globals)
	case (in.kind == kindCall || in.kind == kindRefFunc) && in.idx >= funcs:
		return fmt.Errorf("function %d does not exist (the module has %d)", in.idx, funcs)
	}
	return nil
}

// elementFuncs reports every function index an element segment names.
func elementFuncs(b []byte, fn func(uint32)) error {
	r := &reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if flags > 7 {
			return fmt.Errorf("segment %d: unknown flags %d", i, flags)
		}
		if flags&1 == 0 {
			if flags&2 != 0 {
				r.u32()
			}
			skipExpr(r, fn)
		}
		if flags&3 != 0 {
			r.byte()
		}
		cnt := r.u32()
		for j := uint32(0); j < cnt && r.err == nil; j++ {
			if flags&4 != 0 {
				skipExpr(r, fn)
			} else {
				fn(r.u32())
			}
		}
	}
	return r.err
}

func skipExpr(r *reader, refFunc func(uint32)) {
	for r.err == nil {
		if r.pos < len(r.b) && r.b[r.pos] == 0x0b {
			r.pos++
			return
		}
		in := next(r)
		if in.kind == kindRefFunc {
			refFunc(in.idx)
		}
	}
}

// cycles marks the functions that lie on a cycle of the call graph, where
// an indirect call may reach any address-taken function. Tarjan's
// algorithm, iterative so that deep graphs cannot overflow the stack.
func cycles(bodies []body, indirectTargets []uint32) []bool {
	// Node len(bodies) stands for the table: every function that calls
	// indirectly has an edge to it, and it has an edge to every
	// address-taken function. Reachability is the same as with an edge
	// from each indirect caller to each target, at linear size.
	table := len(bodies)
	n := table + 1
	toTable := []uint32{uint32(table)}
	succ := func(v int) []uint32 {
		if v == table {
			return indirectTargets
		}
		if bodies[v].indirect {
			return append(bodies[v].callees[:len(bodies[v].callees):len(bodies[v].callees)], toTable...)
		}
		return bodies[v].callees
	}
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	cyclic := make([]bool, n)
	var stack []int
	type frame struct {
		v     int
		succ  []uint32
		child int
	}
	counter := 0
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		work := []frame{{v: root, succ: succ(root)}}
		index[root], low[root] = counter, counter
		counter++
		stack = append(stack, root)
		onStack[root] = true
		for len(work) > 0 {
			f := &work[len(work)-1]
			if f.child < len(f.succ) {
				c := f.succ[f.child]
				f.child++
				if c >= uint32(n) { // as uint32: past 2^31 an int is negative on 32-bit platforms
					continue
				}
				w := int(c)
				if w == f.v {
					cyclic[w] = true
				}
				if index[w] < 0 {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					work = append(work, frame{v: w, succ: succ(w)})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			work = work[:len(work)-1]
			if len(work) > 0 {
				p := work[len(work)-1].v
				if low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] == index[v] {
				size := 0
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					size++
					if size > 1 || w != v {
						cyclic[w] = true
					}
					if w == v {
						break
					}
				}
				if size > 1 {
					cyclic[v] = true
				}
			}
		}
	}
	return cyclic[:table]
}

// plan is what rewriteBody needs to know about the rewritten module.
type plan struct {
	opt             Options
	check, fuel     uint32
	remap, remapRef func(uint32) uint32
	// wrapper maps a checked import to the defined function wrapping it.
	wrapper map[uint32]uint32
	// The added bulk helpers (0 when absent).
	weigh, copy, fill uint32
}

// rewriteBody appends the instrumented body of fb to dst.
func (m *module) rewriteBody(dst []byte, fb *body, p *plan, res *Result) []byte {
	opt, check, fuel := p.opt, p.check, p.fuel
	c := fb.numLocals // the new countdown local
	dst = appendU32(dst, fb.nDecl+1)
	dst = append(dst, fb.localDecl...)
	dst = append(dst, 1, 0x7f)
	if opt.globalLoops {
		if fb.cyclic {
			res.Checked++
			dst = appendFuelCheck(dst, fuel, c, check, opt.CallBudget)
		}
	} else if fb.needEntry {
		res.Checked++
		dst = append(dst, 0x23) // global.get fuel
		dst = appendU32(dst, fuel)
		dst = append(dst, 0x41, 0x01, 0x6b, 0x22) // i32.const 1; i32.sub; local.tee c
		dst = appendU32(dst, c)
		dst = append(dst, 0x24) // global.set fuel
		dst = appendU32(dst, fuel)
		dst = append(dst, 0x20) // local.get c
		dst = appendU32(dst, c)
		dst = append(dst, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
		dst = appendS32(dst, opt.CallBudget)
		dst = append(dst, 0x24) // global.set fuel
		dst = appendU32(dst, fuel)
		dst = append(dst, 0x10) // call check
		dst = appendU32(dst, check)
		dst = append(dst, 0x0b)
	}
	if fb.hasLoop && !opt.globalLoops {
		dst = append(dst, 0x41) // i32.const LoopBudget; local.set c
		dst = appendS32(dst, opt.LoopBudget)
		dst = append(dst, 0x21)
		dst = appendU32(dst, c)
	}
	code := fb.raw
	r := &reader{b: code, pos: fb.codeStart}
	copied := fb.codeStart
	for !r.done() {
		start := r.pos
		in := next(r)
		switch in.kind {
		case kindLoop:
			res.Loops++
			dst = append(dst, code[copied:r.pos]...)
			copied = r.pos
			if opt.globalLoops {
				dst = appendFuelCheck(dst, fuel, c, check, opt.CallBudget)
				continue
			}
			dst = append(dst, 0x20) // local.get c
			dst = appendU32(dst, c)
			dst = append(dst, 0x41, 0x01, 0x6b, 0x22) // i32.const 1; i32.sub; local.tee c
			dst = appendU32(dst, c)
			dst = append(dst, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
			dst = appendS32(dst, opt.LoopBudget)
			dst = append(dst, 0x21) // local.set c
			dst = appendU32(dst, c)
			dst = append(dst, 0x10) // call check
			dst = appendU32(dst, check)
			dst = append(dst, 0x0b)
		case kindCall:
			if in.idx >= check {
				dst = append(dst, code[copied:in.idxPos]...)
				dst = appendU32(dst, p.remap(in.idx))
				copied = r.pos
			} else if _, ok := p.wrapper[in.idx]; ok {
				// The host function's time counts: check right after it.
				dst = append(dst, code[copied:r.pos]...)
				copied = r.pos
				dst = append(dst, 0x10)
				dst = appendU32(dst, check)
			}
		case kindRefFunc:
			if _, ok := p.wrapper[in.idx]; ok || in.idx >= check {
				dst = append(dst, code[copied:in.idxPos]...)
				dst = appendU32(dst, p.remapRef(in.idx))
				copied = r.pos
			}
		case kindBulk:
			res.Bulk++
			dst = append(dst, code[copied:start]...)
			switch {
			case in.idx == bulkMemoryCopy && in.mem0:
				dst = append(dst, 0x10)
				dst = appendU32(dst, p.copy)
				copied = r.pos
			case in.idx == bulkMemoryFill && in.mem0:
				dst = append(dst, 0x10)
				dst = appendU32(dst, p.fill)
				copied = r.pos
			default:
				// The length is on top of the stack: weigh passes it on.
				dst = append(dst, 0x10)
				dst = appendU32(dst, p.weigh)
				copied = start
			}
		}
	}
	return append(dst, code[copied:]...)
}

// appendFuelCheck appends the decrement of the fuel global and the call to
// check when it runs out, using local c as a temporary.
func appendFuelCheck(dst []byte, fuel, c, check uint32, budget int32) []byte {
	dst = append(dst, 0x23) // global.get fuel
	dst = appendU32(dst, fuel)
	dst = append(dst, 0x41, 0x01, 0x6b, 0x22) // i32.const 1; i32.sub; local.tee c
	dst = appendU32(dst, c)
	dst = append(dst, 0x24) // global.set fuel
	dst = appendU32(dst, fuel)
	dst = append(dst, 0x20) // local.get c
	dst = appendU32(dst, c)
	dst = append(dst, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
	dst = appendS32(dst, budget)
	dst = append(dst, 0x24) // global.set fuel
	dst = appendU32(dst, fuel)
	dst = append(dst, 0x10) // call check
	dst = appendU32(dst, check)
	return append(dst, 0x0b)
}
