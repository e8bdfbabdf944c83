package instrument

// Bodies of the functions the rewrite adds. Each is a complete code
// section entry (locals, instructions, end), built after the analysis, so
// none of them is instrumented: they stay within their budget by
// construction.

const i32 = 0x7f

// asm is a tiny assembler for the added bodies.
type asm []byte

func (a asm) op(b ...byte) asm           { return append(a, b...) }
func (a asm) get(i uint32) asm           { return appendU32(append(a, 0x20), i) }
func (a asm) set(i uint32) asm           { return appendU32(append(a, 0x21), i) }
func (a asm) tee(i uint32) asm           { return appendU32(append(a, 0x22), i) }
func (a asm) gget(i uint32) asm          { return appendU32(append(a, 0x23), i) }
func (a asm) gset(i uint32) asm          { return appendU32(append(a, 0x24), i) }
func (a asm) i32c(v int32) asm           { return appendS32(append(a, 0x41), v) }
func (a asm) call(f uint32) asm          { return appendU32(append(a, 0x10), f) }
func (a asm) brIf(depth uint32) asm      { return appendU32(append(a, 0x0d), depth) }
func (a asm) memCopy() asm               { return append(a, 0xfc, bulkMemoryCopy, 0, 0) }
func (a asm) memFill() asm               { return append(a, 0xfc, bulkMemoryFill, 0) }
func (a asm) body(locals ...byte) []byte { return a.withLocals(locals) }

func (a asm) withLocals(locals []byte) []byte {
	var b []byte
	b = appendU32(b, uint32(len(locals)))
	for _, l := range locals {
		b = append(b, 1, l)
	}
	b = append(b, a...)
	return append(b, 0x0b)
}

// Opcodes used below.
const (
	opIf        = 0x04
	opElse      = 0x05
	opEnd       = 0x0b
	opLoop      = 0x03
	opVoid      = 0x40
	opI32Add    = 0x6a
	opI32Sub    = 0x6b
	opI32ShrU   = 0x76
	opI32LtS    = 0x48
	opI32LeU    = 0x4d
	opI32GtU    = 0x4b
	opI32Or     = 0x72
	opI64Add    = 0x7c
	opI64Shl    = 0x86
	opI64GtU    = 0x56
	opI64ExtU   = 0xad
	opMemSize   = 0x3f
	opUnreached = 0x00
	opI64Const  = 0x42
)

// wrapperBody calls import imp with the wrapper's params, then check.
func wrapperBody(params, imp, check uint32) []byte {
	var a asm
	for i := uint32(0); i < params; i++ {
		a = a.get(i)
	}
	return a.call(imp).call(check).body()
}

// weighBody is weigh(n i32) -> i32: it takes (n >> BulkShift) + 1 from the
// fuel, calls check (and refills the fuel) when the fuel runs out, and
// returns n, so that it can sit right before the bulk operation whose
// length is on top of the stack. The fuel is refilled whenever it is not
// positive, so the entry checks' "fuel reached 0" keeps working.
func weighBody(p *plan) []byte {
	const n, t = 0, 1
	a := asm{}.gget(p.fuel).
		get(n).i32c(BulkShift).op(opI32ShrU).i32c(1).op(opI32Add).
		op(opI32Sub).tee(t).gset(p.fuel).
		get(t).i32c(1).op(opI32LtS).
		op(opIf, opVoid).i32c(p.opt.CallBudget).gset(p.fuel).call(p.check).op(opEnd).
		get(n)
	return a.body(i32)
}

// outside pushes whether addr+n (unsigned, without wrapping) passes the
// end of memory.
func (a asm) outside(addr, n uint32) asm {
	return a.get(addr).op(opI64ExtU).get(n).op(opI64ExtU).op(opI64Add).
		op(opMemSize, 0).op(opI64ExtU).op(opI64Const, 16).op(opI64Shl).
		op(opI64GtU)
}

// copyBody is copy(d, s, n), memory.copy in chunks of BulkChunk bytes,
// each weighed. Out-of-bounds operands run the native instruction, which
// traps before it writes anything, as the original would. Overlapping
// regions are copied front to back when d <= s and back to front
// otherwise, so that no chunk overwrites source bytes not yet copied.
func copyBody(p *plan) []byte {
	const d, s, n = 0, 1, 2
	a := asm{}.get(n).i32c(BulkChunk).op(opI32GtU).
		op(opIf, opVoid).
		outside(d, n).outside(s, n).op(opI32Or).
		op(opIf, opVoid).get(d).get(s).get(n).memCopy().op(opUnreached).op(opEnd).
		get(d).get(s).op(opI32LeU).
		op(opIf, opVoid).
		// forward
		op(opLoop, opVoid).
		i32c(BulkChunk).call(p.weigh).op(0x1a). // drop
		get(d).get(s).i32c(BulkChunk).memCopy().
		get(d).i32c(BulkChunk).op(opI32Add).set(d).
		get(s).i32c(BulkChunk).op(opI32Add).set(s).
		get(n).i32c(BulkChunk).op(opI32Sub).tee(n).i32c(BulkChunk).op(opI32GtU).brIf(0).
		op(opEnd).
		op(opElse).
		// backward: the tail first, the head (at most a chunk) last
		op(opLoop, opVoid).
		i32c(BulkChunk).call(p.weigh).op(0x1a).
		get(n).i32c(BulkChunk).op(opI32Sub).set(n).
		get(d).get(n).op(opI32Add).get(s).get(n).op(opI32Add).i32c(BulkChunk).memCopy().
		get(n).i32c(BulkChunk).op(opI32GtU).brIf(0).
		op(opEnd).
		op(opEnd).
		op(opEnd).
		get(d).get(s).get(n).call(p.weigh).memCopy()
	return a.body()
}

// fillBody is fill(d, v, n), memory.fill in weighed chunks.
func fillBody(p *plan) []byte {
	const d, v, n = 0, 1, 2
	a := asm{}.get(n).i32c(BulkChunk).op(opI32GtU).
		op(opIf, opVoid).
		outside(d, n).
		op(opIf, opVoid).get(d).get(v).get(n).memFill().op(opUnreached).op(opEnd).
		op(opLoop, opVoid).
		i32c(BulkChunk).call(p.weigh).op(0x1a).
		get(d).get(v).i32c(BulkChunk).memFill().
		get(d).i32c(BulkChunk).op(opI32Add).set(d).
		get(n).i32c(BulkChunk).op(opI32Sub).tee(n).i32c(BulkChunk).op(opI32GtU).brIf(0).
		op(opEnd).
		op(opEnd).
		get(d).get(v).get(n).call(p.weigh).memFill()
	return a.body()
}
