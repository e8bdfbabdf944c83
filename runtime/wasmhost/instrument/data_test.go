package instrument

import (
	"bytes"
	"testing"
)

type testSegment struct {
	flag byte // 0 active; 1 passive
	off  int32
	data []byte
}

func dataSection(segs ...testSegment) []byte {
	b := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, s.flag)
		if s.flag == 0 {
			b = append(b, 0x41)
			b = appendS32(b, s.off)
			b = append(b, 0x0b)
		}
		b = appendU32(b, uint32(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

// apply writes a data section of active constant-offset segments into a
// fresh (zero) memory, as instantiation does, and counts the segments.
func apply(t *testing.T, body []byte) ([]byte, int) {
	t.Helper()
	mem := make([]byte, 1024)
	r := &reader{b: body}
	n := int(r.u32())
	for range n {
		if r.u32() != 0 || r.byte() != 0x41 {
			t.Fatal("not an active segment")
		}
		off := int(r.sleb(5))
		r.byte()
		copy(mem[off:], r.bytes(int(r.u32())))
	}
	if r.err != nil || !r.done() {
		t.Fatalf("malformed data section: %v", r.err)
	}
	return mem, n
}

// Segments a few bytes apart, given out of order, become one; a gap wider
// than mergeGap starts another; the memory they write is the same.
func TestMergeDataKeepsMemory(t *testing.T) {
	in := dataSection(
		testSegment{off: 40, data: []byte("cd")},
		testSegment{off: 10, data: []byte("ab")},
		testSegment{off: 42, data: []byte("ef")}, // adjacent
		testSegment{off: 50 + mergeGap + 100, data: []byte("far")},
		testSegment{off: 50 + mergeGap + 120, data: []byte("x")},
	)
	out := mergeData(in)
	if out == nil {
		t.Fatal("mergeData kept a mergeable section")
	}
	want, wantN := apply(t, in)
	got, gotN := apply(t, out)
	if !bytes.Equal(got, want) {
		t.Fatalf("memory after the merged section differs:\n got %q\nwant %q", got[:300], want[:300])
	}
	if wantN != 5 || gotN != 2 {
		t.Fatalf("segments: %d -> %d, want 5 -> 2", wantN, gotN)
	}
}

// Sections whose segment order or indexes may matter are kept.
func TestMergeDataKeeps(t *testing.T) {
	for name, body := range map[string][]byte{
		"passive segment": dataSection(testSegment{off: 0, data: []byte("a")}, testSegment{flag: 1, data: []byte("b")}),
		"overlap":         dataSection(testSegment{off: 0, data: []byte("abc")}, testSegment{off: 2, data: []byte("z")}),
		"one segment":     dataSection(testSegment{off: 0, data: []byte("abc")}),
		"nothing to merge": dataSection(testSegment{off: 0, data: []byte("a")},
			testSegment{off: 10 + mergeGap, data: []byte("b")}),
		"negative offset": dataSection(testSegment{off: -8, data: []byte("a")}, testSegment{off: 0, data: []byte("b")}),
		"truncated":       dataSection(testSegment{off: 0, data: []byte("a")}, testSegment{off: 2, data: []byte("b")})[:9],
	} {
		if out := mergeData(body); out != nil {
			t.Errorf("%s: merged into %x", name, out)
		}
	}
}
