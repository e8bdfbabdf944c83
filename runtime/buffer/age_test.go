package buffer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// fakeNow is a settable clock.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// TestOldestAge: Stats.Oldest dates the oldest record not yet committed,
// to the second, while records are appended over a simulated day, as the
// drain commits, and after a restart (from the segment headers).
func TestOldestAge(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeNow{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	opts := Options{Dir: dir, MaxSize: 1 << 20, SegmentSize: 16 << 10, Now: clk.Now, NoSync: true}
	b, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Stats().Oldest.IsZero() {
		t.Fatal("an empty buffer has a backlog age")
	}
	start := clk.Now()
	clk.Add(3 * time.Hour) // opened long before the first record
	ctx := context.Background()
	// One record a minute for 24 hours: 1440 records, a few segments.
	for i := range 1440 {
		if err := b.Append(ctx, []message.Message{{Payload: make([]byte, 100+i%7)}}, nil); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
	}
	first := start.Add(3 * time.Hour)
	if got := b.Stats().Oldest; !got.Equal(first) {
		t.Fatalf("oldest %v, want the first append at %v", got, first)
	}
	// Deliver 600 records: the oldest left was appended 600 minutes in.
	for n := 0; n < 600; {
		batch, err := b.Read(ctx, 600-n)
		if err != nil {
			t.Fatal(err)
		}
		n += len(batch.Msgs)
		if err := b.Commit(batch.Cursor); err != nil {
			t.Fatal(err)
		}
	}
	want := first.Add(600 * time.Minute)
	if got := b.Stats().Oldest; !got.Equal(want) {
		t.Fatalf("after 600 delivered: oldest %v, want %v", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart the age comes from the segment headers: never
	// younger than the truth, at most one segment's span older.
	b, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := b.Stats().Oldest
	if got.After(want) || want.Sub(got) > 24*time.Hour || got.Before(first) {
		t.Fatalf("after a restart: oldest %v, want at or a segment before %v", got, want)
	}
	segs := b.Stats().Segments
	if segs < 3 {
		t.Fatalf("%d segments: the test wants several", segs)
	}
	// Deliver the rest: no backlog, no age.
	for b.Stats().Records > 0 {
		batch, err := b.Read(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(batch.Cursor); err != nil {
			t.Fatal(err)
		}
	}
	if !b.Stats().Oldest.IsZero() {
		t.Fatalf("empty buffer dated %v", b.Stats().Oldest)
	}
}

// TestMarksBounded: a long backlog keeps at most maxMarks marks, and the
// first still dates the oldest record.
func TestMarksBounded(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	b, err := Open(Options{Dir: t.TempDir(), MaxSize: 64 << 20, Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	first := clk.Now()
	for range 3 * maxMarks {
		if err := b.Append(context.Background(), []message.Message{{Payload: []byte("x")}}, nil); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Second)
	}
	b.mu.Lock()
	n := len(b.marks)
	b.mu.Unlock()
	if n > maxMarks || n < maxMarks/2 {
		t.Fatalf("%d marks, want between %d and %d", n, maxMarks/2, maxMarks)
	}
	if got := b.Stats().Oldest; !got.Equal(first) {
		t.Fatalf("oldest %v, want %v", got, first)
	}
}

// TestOldestAfterADayOffline: a day of appends, one a second (the sink
// down), then the drain: at every commit the backlog's age is that of the
// oldest record left, within the resolution the 4096 marks allow over a
// day (a minute). Thinning kept the first mark and every other one, and
// went on adding marks a second apart: the oldest part of the backlog was
// thinned again at every round, until a mark stood for hours of records,
// and the gauge read up to 17 hours too old while the backlog drained.
func TestOldestAfterADayOffline(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	b, err := Open(Options{Dir: t.TempDir(), MaxSize: 64 << 20, Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := clk.Now()
	const n = 86400
	one := []message.Message{{Payload: []byte("x")}}
	for range n {
		if err := b.Append(context.Background(), one, nil); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	for done := 0; done < n; {
		batch, err := b.Read(context.Background(), 500)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(batch.Cursor); err != nil {
			t.Fatal(err)
		}
		done += len(batch.Msgs)
		if done == n {
			break
		}
		want := start.Add(time.Duration(done) * time.Second) // record done is the oldest left
		if got := b.Stats().Oldest; got.After(want) || want.Sub(got) > time.Minute {
			t.Fatalf("after %d of %d records delivered: oldest %v, want %v (within a minute, never younger)", done, n, got, want)
		}
	}
}
