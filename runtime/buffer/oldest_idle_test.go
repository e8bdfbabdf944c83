package buffer

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// TestOldestAfterIdle: once everything was delivered, a record
// appended an hour later is the oldest not yet committed; Stats.Oldest
// must date it (age ~0), not the long-delivered record before it.
func TestOldestAfterIdle(t *testing.T) {
	t.Parallel()
	clk := &fakeNow{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 1 << 20, Now: clk.Now, NoSync: true})
	ctx := context.Background()
	appendT(t, b, []message.Message{{Payload: []byte("a")}})
	readN(t, b, 1, 10, true)
	if s := b.Stats(); s.Records != 0 || !s.Oldest.IsZero() {
		t.Fatalf("delivered buffer: %+v", s)
	}
	clk.Add(time.Hour)
	if err := b.Append(ctx, []message.Message{{Payload: []byte("b")}}, nil); err != nil {
		t.Fatal(err)
	}
	want := clk.Now()
	if s := b.Stats(); !s.Oldest.Equal(want) {
		t.Fatalf("one record appended just now, yet Stats.Oldest = %v (age %v), want %v", s.Oldest, want.Sub(s.Oldest), want)
	}
}

// TestOldestAfterRestartIdle: the same after a restart: the tail
// segment's records were all delivered; a record appended now is dated by
// the old segment's header.
func TestOldestAfterRestartIdle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &fakeNow{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	o := Options{Dir: dir, MaxSize: 1 << 20, Now: clk.Now, NoSync: true}
	b := openT(t, o)
	ctx := context.Background()
	appendT(t, b, []message.Message{{Payload: []byte("a")}})
	readN(t, b, 1, 10, true)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Hour)
	b = openT(t, o)
	if err := b.Append(ctx, []message.Message{{Payload: []byte("b")}}, nil); err != nil {
		t.Fatal(err)
	}
	want := clk.Now()
	if s := b.Stats(); !s.Oldest.Equal(want) {
		t.Fatalf("after a restart, one record appended just now, yet Stats.Oldest = %v (age %v), want %v", s.Oldest, want.Sub(s.Oldest), want)
	}
}
