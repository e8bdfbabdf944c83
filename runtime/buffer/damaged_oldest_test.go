package buffer

import (
	"testing"
)

// TestDamagedOldestHeaderCounted: the package documentation says a
// segment with a damaged header is removed at Open "and the gap it leaves
// is counted the same way" (Stats.Lost). TestDamagedSegmentHeader checks a
// middle segment; here the damaged one is the oldest, holding undelivered
// records.
func TestDamagedOldestHeaderCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := segmentsOf(t, dir, 100)
	segs := segFiles(t, dir)
	next := firstIndex(t, segs[1])
	flipByte(t, segs[0], 17) // first-record number in the header

	b := openT(t, o)
	t.Logf("recovery %+v", b.Recovery())
	got := readN(t, b, 100-next, 100, true)
	checkSeq(t, got, next)
	expectEmpty(t, b)
	if s := b.Stats(); s.Lost != uint64(next) || s.LostGroups != uint64(next) {
		t.Fatalf("stats %+v: the %d records of the removed oldest segment are not counted as lost", s, next)
	}
}
