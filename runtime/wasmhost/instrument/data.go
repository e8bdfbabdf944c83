package instrument

import (
	"math"
	"slices"
)

// mergeGap is the longest run of bytes between two data segments that
// mergeData fills with zeros to make one segment of them.
const mergeGap = 64

// mergeData rewrites a data section whose segments are all active, in
// memory 0, at constant offsets and without overlaps, into as few segments
// as gaps of at most mergeGap bytes allow; it returns nil for any other
// section, which is then kept as it is.
//
// Why: Go's linker writes its data as tens of thousands of small segments
// (a Go plugin: ~38,900 segments for 950 KB, separated by runs of ~20 zero
// bytes). wazero keeps every segment as its own objects in the compiled
// module, decodes them at every start, and gives every instance a slice
// entry per segment: ~4 MiB of heap for the module and ~0.9 MiB per
// instance. Merged: a dozen segments, ~0.7 MB of zeros written out
// (docs/performance.md, "Memory"). The memory the module sees at start is
// the same: a fresh linear memory is zero, and no segment covers a gap.
func mergeData(body []byte) []byte {
	type segment struct {
		off  uint32
		data []byte
	}
	r := &reader{b: body}
	n := r.u32()
	if r.err != nil || n < 2 || uint64(n) > uint64(len(body)) {
		return nil
	}
	segs := make([]segment, 0, n)
	for range n {
		if r.u32() != 0 || r.byte() != 0x41 { // active, memory 0, i32.const
			return nil
		}
		off := r.sleb(5)
		if r.byte() != 0x0b { // end
			return nil
		}
		data := r.bytes(int(r.u32()))
		if r.err != nil || off < 0 || off > math.MaxInt32 {
			return nil
		}
		segs = append(segs, segment{uint32(off), data})
	}
	if r.err != nil || !r.done() {
		return nil
	}
	slices.SortStableFunc(segs, func(a, b segment) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	for i := 1; i < len(segs); i++ {
		if uint64(segs[i].off) < uint64(segs[i-1].off)+uint64(len(segs[i-1].data)) {
			return nil // overlapping segments: the order of writes matters
		}
	}
	var merged []segment
	var cur []byte
	start := segs[0].off
	for i, s := range segs {
		end := uint64(start) + uint64(len(cur))
		if i > 0 && uint64(s.off)-end > mergeGap {
			merged = append(merged, segment{start, cur})
			start, cur = s.off, nil
			end = uint64(start)
		}
		cur = append(cur, make([]byte, uint64(s.off)-end)...)
		cur = append(cur, s.data...)
	}
	merged = append(merged, segment{start, cur})
	if len(merged) == len(segs) {
		return nil
	}
	out := appendU32(make([]byte, 0, len(body)), uint32(len(merged)))
	for _, s := range merged {
		out = append(out, 0, 0x41)
		out = appendS32(out, int32(s.off))
		out = append(out, 0x0b)
		out = appendU32(out, uint32(len(s.data)))
		out = append(out, s.data...)
	}
	return out
}
