package instrument

import "testing"

// TestCapTablesSharesTheBudget: the tables' maximums add up to at most
// MaxTableSize, the per-instance budget, so table.grow on every table of a
// module cannot take more than one table's worth of host memory.
func TestCapTablesSharesTheBudget(t *testing.T) {
	body := appendU32(nil, 3)
	for _, min := range []uint32{10, 1000, 0} {
		body = append(body, 0x70, 0x00)
		body = appendU32(body, min)
	}
	r := &reader{b: capTables(body)}
	var sum uint64
	for range r.u32() {
		r.byte()
		if flags := r.byte(); flags != 1 {
			t.Fatalf("flags %d, want a maximum", flags)
		}
		min, max := r.u32(), r.u32()
		if max < min {
			t.Fatalf("maximum %d below the minimum %d", max, min)
		}
		sum += uint64(max)
	}
	if r.err != nil || sum > MaxTableSize || sum < MaxTableSize-3 {
		t.Fatalf("maximums add up to %d (err %v), want at most and about %d", sum, r.err, MaxTableSize)
	}
}
