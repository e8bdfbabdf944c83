package buffer

import (
	"strings"
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

// TestDamagedLastHeaderCounted: the last segment, holding undelivered
// records, has a damaged header. Open removed it (rightly: where its
// records belong cannot be trusted) but counted nothing, since no later
// segment leaves a gap for the reader to count: its events vanished
// without showing in Stats.Lost (the engine's dropped counter). Only the
// records after the cursor count; those before it were delivered.
func TestDamagedLastHeaderCounted(t *testing.T) {
	t.Parallel()
	for _, committed := range []int{0, 2} {
		dir := t.TempDir()
		o := segmentsOf(t, dir, 100)
		segs := segFiles(t, dir)
		last := segs[len(segs)-1]
		from := firstIndex(t, last)
		if committed > 0 {
			// The cursor inside the last segment: its first records
			// were delivered.
			b := openT(t, o)
			readN(t, b, from+committed, 1, true)
			b.Close()
		}
		flipByte(t, last, 17) // first-record number in the header

		b := openT(t, o)
		if r := b.Recovery(); len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "damaged header") {
			t.Fatalf("recovery %+v, want a note about the damaged header", r)
		}
		if committed == 0 {
			checkSeq(t, readN(t, b, from, 100, true), 0)
		}
		expectEmpty(t, b)
		want := uint64(100 - from - committed)
		if s := b.Stats(); s.Lost != want || s.LostGroups != want {
			t.Fatalf("cursor %d records into the last segment: stats %+v; want its %d undelivered records counted as lost", committed, s, want)
		}
		// The buffer goes on.
		appendT(t, b, testMsgs(500, 3))
		checkSeq(t, readN(t, b, 3, 100, true), 500)
		b.Close()
	}
}
