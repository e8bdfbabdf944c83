package instrument

import "fmt"

// What the instrumenter needs to know about one instruction.
const (
	kindPlain    = iota
	kindLoop     // loop: a check goes right after its block type
	kindCall     // call or return_call: idx is a function index
	kindRefFunc  // ref.func: idx is a function index
	kindIndirect // call_indirect, return_call_indirect, call_ref
	kindBulk     // an operation whose cost grows with its length operand (the top of the stack)
	kindLocal    // local.get, local.set, local.tee: idx is a local index
	kindGlobal   // global.get, global.set: idx is a global index
)

// Bulk operations (0xfc prefix): their last operand is a length, and each
// runs as one uninterruptible host loop over that many bytes or elements.
const (
	bulkMemoryInit = 8
	bulkMemoryCopy = 10
	bulkMemoryFill = 11
	bulkTableInit  = 12
	bulkTableCopy  = 14
	bulkTableFill  = 17
)

// instr is one decoded instruction.
type instr struct {
	kind   int
	idx    uint32 // function index for kindCall and kindRefFunc, local or global index for kindLocal and kindGlobal; the 0xfc sub-opcode for kindBulk
	idxPos int    // where the index's LEB128 starts
	mem0   bool   // kindBulk memory.copy and memory.fill: on memory 0 (all but multi-memory)
}

// next decodes the instruction at r.pos and advances past it. It accepts
// WebAssembly 2.0 plus the tail-call, exception-handling and threads
// opcodes, and fails on anything else: an opcode it cannot size cannot be
// skipped safely.
func next(r *reader) instr {
	start := r.pos
	op := r.byte()
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd4:
		// No immediates (0xd3 ref.eq, 0xd4 ref.as_non_null).
	case op == 0x02, op == 0x04:
		r.sleb(5) // block type
	case op == 0x03:
		r.sleb(5)
		return instr{kind: kindLoop}
	case op == 0x06: // legacy try
		r.sleb(5)
	case op == 0x07, op == 0x08, op == 0x09, op == 0x18, op == 0x19: // catch, throw, rethrow, delegate, catch_all
		if op != 0x19 {
			r.u32()
		}
	case op == 0x0c, op == 0x0d, op == 0xd5, op == 0xd6: // br, br_if, br_on_null, br_on_non_null
		r.u32()
	case op == 0x0e:
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x10, op == 0x12:
		p := r.pos
		return instr{kind: kindCall, idx: r.u32(), idxPos: p}
	case op == 0x11, op == 0x13:
		r.u32()
		r.u32()
		return instr{kind: kindIndirect}
	case op == 0x14, op == 0x15: // call_ref, return_call_ref
		r.u32()
		return instr{kind: kindIndirect}
	case op == 0x1c:
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte()
		}
	case op == 0x1f: // try_table
		r.sleb(5)
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			switch r.byte() {
			case 0x00, 0x01:
				r.u32()
				r.u32()
			case 0x02, 0x03:
				r.u32()
			default:
				r.fail(fmt.Errorf("unknown catch clause at byte %d", r.pos-1))
			}
		}
	case op >= 0x20 && op <= 0x22:
		return instr{kind: kindLocal, idx: r.u32()}
	case op == 0x23, op == 0x24:
		return instr{kind: kindGlobal, idx: r.u32()}
	case op == 0x25, op == 0x26: // table.get, table.set
		r.u32()
	case op >= 0x28 && op <= 0x3e:
		memarg(r)
	case op == 0x3f, op == 0x40:
		r.u32()
	case op == 0x41:
		r.sleb(5)
	case op == 0x42:
		r.sleb(10)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0:
		r.sleb(5) // heap type
	case op == 0xd2:
		p := r.pos
		return instr{kind: kindRefFunc, idx: r.u32(), idxPos: p}
	case op == 0xfc:
		sub := r.u32()
		switch sub {
		case bulkMemoryCopy:
			dst, src := r.u32(), r.u32()
			return instr{kind: kindBulk, idx: sub, mem0: dst == 0 && src == 0}
		case bulkMemoryFill:
			return instr{kind: kindBulk, idx: sub, mem0: r.u32() == 0}
		case bulkMemoryInit, bulkTableInit, bulkTableCopy, bulkTableFill:
			prefixFC(r, sub)
			return instr{kind: kindBulk, idx: sub}
		}
		prefixFC(r, sub)
	case op == 0xfd:
		prefixFD(r, r.u32())
	case op == 0xfe:
		sub := r.u32()
		if sub == 0x03 {
			r.byte() // atomic.fence
		} else {
			memarg(r)
		}
	default:
		r.fail(fmt.Errorf("unsupported opcode 0x%02x at byte %d", op, start))
	}
	return instr{}
}

func memarg(r *reader) {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u32()
}

func prefixFC(r *reader, sub uint32) {
	switch {
	case sub <= 7:
	case sub == 8: // memory.init
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.u32()
	case sub == 10, sub == 12, sub == 14:
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfc %d at byte %d", sub, r.pos))
	}
}

func prefixFD(r *reader, sub uint32) {
	switch {
	case sub <= 11, sub == 92, sub == 93:
		memarg(r)
	case sub == 12, sub == 13:
		r.bytes(16)
	case sub >= 21 && sub <= 34:
		r.byte()
	case sub >= 84 && sub <= 91:
		memarg(r)
		r.byte()
	case sub <= 0x113:
		// Every other SIMD opcode (relaxed SIMD included) has no immediate.
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfd %d at byte %d", sub, r.pos))
	}
}
