package buffer

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func event(size int, off int64) []message.Message {
	return []message.Message{{Payload: make([]byte, size), Pos: message.Position{Offset: off}}}
}

// TestBlockedAppendWakesWhenEverythingIsDelivered: under when_full =
// "block", an Append waiting next to one large record (which an Append
// may write alone, whatever the segment size) goes through once the drain
// commits that record, although the commit deletes no segment: the last
// one is only freed by the next Append starting a new one.
func TestBlockedAppendWakesWhenEverythingIsDelivered(t *testing.T) {
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 8 << 10, SegmentSize: 1 << 10, NoSync: true})
	if err := b.Append(context.Background(), event(5000, 1), nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Append(context.Background(), event(3500, 2), nil) }()
	testkit.WaitBlocked(t, "(*Buffer).reserveLocked")

	readN(t, b, 1, 10, true)
	var err error
	testkit.WaitFor(t, "the blocked Append to go through after the commit", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Records != 1 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want the second record alone", s)
	}
}

// TestDropOldestSparesUnreadRecordsDuringCommit: under when_full =
// "drop_oldest", an Append that needs the space a Commit is freeing must
// not drop unread records while the Commit writes its cursor. The test
// holds the buffer's lock until both calls wait for it, so that the
// Append can land in the Commit's cursor write (it did, within three
// rounds, before the Commit counted the space free at once).
func TestDropOldestSparesUnreadRecordsDuringCommit(t *testing.T) {
	for round := range 100 {
		b := openT(t, Options{Dir: t.TempDir(), MaxSize: 8 << 10, SegmentSize: 1 << 10, WhenFull: DropOldest})
		n := int64(0)
		for b.Stats().Segments < 8 || b.Stats().Bytes+1000 <= 8<<10 { // one 900-byte record a segment, until full
			if err := b.Append(context.Background(), event(900, n), nil); err != nil {
				t.Fatal(err)
			}
			n++
		}
		batch, err := b.Read(context.Background(), 1) // the first segment's record
		if err != nil {
			t.Fatal(err)
		}
		commitBesideAppend(t, b, batch.Cursor, event(900, n))
		// Had the Append taken the lock first, it would have dropped the
		// first segment, read but not committed: Dropped counts unread
		// records only, and only the Commit's window can make it grow.
		if s := b.Stats(); s.Dropped != 0 {
			t.Fatalf("round %d: %d unread records dropped while a Commit freed a delivered segment (stats %+v)", round, s.Dropped, s)
		}
		b.Close()
	}
}

// commitBesideAppend commits cur and appends msgs at once: both wait for
// the buffer's lock, held until both are there, so that they race for it.
func commitBesideAppend(t *testing.T, b *Buffer, cur Cursor, msgs []message.Message) {
	t.Helper()
	b.mu.Lock()
	committed, appended := make(chan error, 1), make(chan error, 1)
	go func() { committed <- b.Commit(cur) }()
	go func() { appended <- b.Append(context.Background(), msgs, nil) }()
	testkit.WaitBlocked(t, "(*Buffer).Commit")
	testkit.WaitBlocked(t, "(*Buffer).append")
	b.mu.Unlock()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
}

// TestGapAfterADropCutsAGroup: drop_oldest deleting a segment the reader
// is inside of flags the next Batch with Gap, so that the engine does not
// take its records for the rest of the cut group; reads in order do not.
func TestGapAfterADropCutsAGroup(t *testing.T) {
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 8 << 10, SegmentSize: 1 << 10, WhenFull: DropOldest, NoSync: true})
	group := func(from int) ([]message.Message, []Tag) { // two 400-byte records: one group, one segment
		msgs := []message.Message{{Payload: make([]byte, 400), Pos: message.Position{Offset: int64(from)}}, {Payload: make([]byte, 400), Pos: message.Position{Offset: int64(from + 1)}}}
		return msgs, []Tag{{Group: 0}, {Group: 0, Last: true}}
	}
	for i := 0; b.Stats().Segments < 8; i += 2 {
		msgs, tags := group(i)
		if err := b.Append(context.Background(), msgs, tags); err != nil {
			t.Fatal(err)
		}
	}
	first, err := b.Read(context.Background(), 1) // inside the first group
	if err != nil || first.Gap || len(first.Msgs) != 1 {
		t.Fatalf("first read: %d records, gap %v, %v", len(first.Msgs), first.Gap, err)
	}
	for b.Stats().Dropped == 0 { // fill up until the first segment goes
		msgs, tags := group(1000)
		if err := b.Append(context.Background(), msgs, tags); err != nil {
			t.Fatal(err)
		}
	}
	next, err := b.Read(context.Background(), 2)
	if err != nil || !next.Gap || next.Msgs[0].Pos.Offset != 2 {
		t.Fatalf("read after the drop: gap %v, first record %v, %v; want the second group, flagged", next.Gap, next.Msgs[0].Pos, err)
	}
	after, err := b.Read(context.Background(), 2)
	if err != nil || after.Gap {
		t.Fatalf("read in order after it: gap %v, %v", after.Gap, err)
	}
}
