package buffer

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// fillUntilFull appends 5-record batches from number `from` until one
// cannot be stored within a short wait, and returns the next number.
func fillUntilFull(t *testing.T, b *Buffer, from int) int {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		err := b.Append(ctx, testMsgs(from, 5), nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return from
		}
		if err != nil {
			t.Fatal(err)
		}
		from += 5
		if from > 100_000 {
			t.Fatal("the buffer never got full")
		}
	}
}

func checkDiskSize(t testing.TB, b *Buffer) {
	t.Helper()
	if n, _ := dirBytes(t, b.dir); n > b.opts.MaxSize {
		t.Fatalf("segment files hold %d bytes, over max_size %d", n, b.opts.MaxSize)
	}
}

func TestBlockWhenFull(t *testing.T) {
	t.Parallel()
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 16 << 10, SegmentSize: 4 << 10, NoSync: true})
	n := fillUntilFull(t, b, 0)
	checkDiskSize(t, b)
	if s := b.Stats(); s.Records != uint64(n) || s.Dropped != 0 {
		t.Fatalf("stats %+v, want %d records and nothing dropped", s, n)
	}

	done := make(chan error, 1)
	go func() { done <- b.Append(context.Background(), testMsgs(n, 5), nil) }()
	select {
	case err := <-done:
		t.Fatalf("Append on a full buffer returned %v instead of waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	testkit.WaitFor(t, "Stats.Full while the Append waits", func() bool { return b.Stats().Full })
	// Reading without committing frees nothing.
	got := readN(t, b, 5, 5, false)
	select {
	case err := <-done:
		t.Fatalf("Append returned %v before anything was committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	// Committing the first segment frees it and the Append goes through.
	got = append(got, readN(t, b, n/2, 50, true)...)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still blocked after the drain committed half the buffer")
	}
	checkDiskSize(t, b)
	if b.Stats().Full {
		t.Fatal("Stats.Full after the Append went through")
	}
	got = append(got, readN(t, b, n-len(got)+5, 50, true)...)
	checkSeq(t, got, 0)
	expectEmpty(t, b)
}

// TestBlockFreesTheLastSegment: when everything is delivered but the one
// segment still written to holds the space, Append starts a new segment
// and frees the old one instead of waiting forever.
func TestBlockFreesTheLastSegment(t *testing.T) {
	t.Parallel()
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 8 << 10, SegmentSize: 4 << 10, NoSync: true})
	big := func(n int) []message.Message {
		return []message.Message{{Payload: make([]byte, n), Pos: message.Position{Offset: int64(n)}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int{3500, 3500, 5000, 7000, 7000} {
		if err := b.Append(ctx, big(n), nil); err != nil {
			t.Fatalf("append %d bytes: %v", n, err)
		}
		checkDiskSize(t, b)
		got := readN(t, b, 1, 1, true)
		if len(got[0].Payload) != n {
			t.Fatalf("read %d bytes, want %d", len(got[0].Payload), n)
		}
	}
}

func TestBlockedAppendEnds(t *testing.T) {
	t.Parallel()
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 16 << 10, SegmentSize: 4 << 10, NoSync: true})
	n := fillUntilFull(t, b, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Append(ctx, testMsgs(n, 5), nil) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked Append after its context was cancelled: %v", err)
	}
	go func() { done <- b.Append(context.Background(), testMsgs(n, 5), nil) }()
	testkit.WaitBlocked(t, "(*Buffer).Append")
	b.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Append after Close: %v, want ErrClosed", err)
	}
}

func TestDropOldest(t *testing.T) {
	t.Parallel()
	o := Options{Dir: t.TempDir(), MaxSize: 16 << 10, SegmentSize: 4 << 10, WhenFull: DropOldest, NoSync: true}
	b := openT(t, o)
	appendT(t, b, testMsgs(0, 5))
	// Three records are in the drain's hands when their segment is dropped:
	// they are not counted as dropped.
	inFlight, err := b.Read(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	const total = 1000
	for i := 5; i < total; i += 5 {
		appendT(t, b, testMsgs(i, 5))
		checkDiskSize(t, b)
	}
	s := b.Stats()
	if s.Dropped == 0 || s.Unread+s.Dropped+3 != total || s.DroppedGroups != s.Dropped {
		t.Fatalf("stats %+v: want records dropped, and unread + dropped + 3 read = %d", s, total)
	}
	// The old cursor is behind the drop: committing it is a no-op.
	if err := b.Commit(inFlight.Cursor); err != nil {
		t.Fatal(err)
	}
	got := readN(t, b, int(s.Unread), 64, true)
	checkSeq(t, got, total-len(got)) // the newest records, in order
	expectEmpty(t, b)

	// After a restart the buffer goes on from the oldest kept segment.
	appendT(t, b, testMsgs(total, 5))
	b.Close()
	b = openT(t, o)
	checkSeq(t, readN(t, b, 5, 64, true), total)
}

// TestMaxSizeUnderLoad appends batches of random sizes while a slow drain
// reads, and checks the files never exceed max_size, for both policies.
func TestMaxSizeUnderLoad(t *testing.T) {
	t.Parallel()
	for _, policy := range []WhenFull{Block, DropOldest} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			b := openT(t, Options{Dir: t.TempDir(), MaxSize: 32 << 10, SegmentSize: 3 << 10, WhenFull: policy, NoSync: true})
			rng := rand.New(rand.NewPCG(1, 2))
			const batches = 300
			var wg sync.WaitGroup
			var got []message.Message
			stop := make(chan struct{})
			wg.Go(func() {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					batch, err := b.Read(ctx, 1+rng.IntN(4))
					cancel()
					select {
					case <-stop:
						if err != nil {
							return
						}
					default:
					}
					if err != nil {
						continue
					}
					got = append(got, batch.Msgs...)
					runtime.Gosched()
					if err := b.Commit(batch.Cursor); err != nil {
						t.Error(err)
						return
					}
				}
			})
			next := 0
			for range batches {
				k := 1 + rand.IntN(30)
				msgs := testMsgs(next, k)
				for i := range msgs {
					msgs[i].Event = make([]byte, rand.IntN(400))
				}
				if err := b.Append(context.Background(), msgs, nil); err != nil {
					t.Fatal(err)
				}
				next += k
				checkDiskSize(t, b)
			}
			testkit.WaitFor(t, "the reader to read everything", func() bool { return b.Stats().Unread == 0 })
			close(stop)
			wg.Wait()
			s := b.Stats()
			if uint64(len(got))+s.Dropped != uint64(next) {
				t.Fatalf("read %d + dropped %d != appended %d", len(got), s.Dropped, next)
			}
			if policy == Block && s.Dropped != 0 {
				t.Fatalf("block policy dropped %d records", s.Dropped)
			}
			last := -1
			for _, m := range got {
				n := payloadN(t, m)
				if n <= last {
					t.Fatalf("record %d after %d: out of order", n, last)
				}
				last = n
			}
		})
	}
}

// TestMemoryBoundedBacklog writes a large backlog, reopens the buffer and
// drains it in small batches while watching the heap: memory depends on
// the read-ahead and the batch, not on the backlog.
func TestMemoryBoundedBacklog(t *testing.T) {
	total := 200 << 20
	if testing.Short() {
		total = 20 << 20
	}
	const recSize = 4 << 10
	dir := t.TempDir()
	o := Options{Dir: dir, MaxSize: 256 << 20, NoSync: true}
	b := openT(t, o)
	msgs := make([]message.Message, 100)
	payload := make([]byte, recSize)
	records := total / recSize
	for i := 0; i < records; i += len(msgs) {
		for j := range msgs {
			msgs[j] = message.Message{Payload: payload, Pos: message.Position{Offset: int64(i + j)}}
		}
		appendT(t, b, msgs)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	msgs, payload = nil, nil

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	// What the drain keeps alive, after a collection: garbage not yet
	// collected, and what goroutines of earlier tests still allocate, are
	// not the drain's (without it, one run in a loaded full-package run
	// read 27 MiB where runs alone read 1-6).
	sample := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	opened := time.Now()
	b = openT(t, o)
	t.Logf("Open of a %d MiB backlog (checks the last %d MiB segment) took %v", total>>20, b.opts.SegmentSize>>20, time.Since(opened))
	sample()
	ctx := context.Background()
	for n := 0; n < records; {
		batch, err := b.Read(ctx, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range batch.Msgs {
			if m.Pos.Offset != int64(n) || len(m.Payload) != recSize {
				t.Fatalf("record %d: offset %d, %d bytes", n, m.Pos.Offset, len(m.Payload))
			}
			n++
		}
		if err := b.Commit(batch.Cursor); err != nil {
			t.Fatal(err)
		}
		if n%(64*50) == 0 {
			sample()
		}
	}
	growth := int64(peak) - int64(base)
	t.Logf("drained %d MiB in %d records: heap in use grew by at most %.1f MiB", total>>20, records, float64(growth)/(1<<20))
	if growth > 24<<20 {
		t.Fatalf("heap in use grew by %d bytes while draining a %d-byte backlog; want it bounded by the batch, not the backlog", growth, total)
	}
}

// TestDropOldestHeldBatchGivenBack: records the drain read and did not
// commit are not dropped while it may still deliver them, but once it gives
// them back (a stop, a rewind) after drop_oldest deleted their segment,
// nothing will ever read them again: they count as dropped.
func TestDropOldestHeldBatchGivenBack(t *testing.T) {
	t.Parallel()
	for _, giveBack := range []string{"rewind", "close", "commit"} {
		t.Run(giveBack, func(t *testing.T) {
			t.Parallel()
			o := Options{Dir: t.TempDir(), MaxSize: 16 << 10, SegmentSize: 4 << 10, WhenFull: DropOldest, NoSync: true}
			b := openT(t, o)
			appendT(t, b, testMsgs(0, 5))
			held, err := b.Read(context.Background(), 3)
			if err != nil {
				t.Fatal(err)
			}
			const total = 1000
			for i := 5; i < total; i += 5 {
				appendT(t, b, testMsgs(i, 5))
			}
			before := b.Stats()
			if before.Dropped == 0 || before.Unread+before.Dropped+3 != total {
				t.Fatalf("stats %+v: want records dropped, and unread + dropped + 3 held = %d", before, total)
			}
			var after Stats
			switch giveBack {
			case "rewind":
				if err := b.Rewind(); err != nil {
					t.Fatal(err)
				}
				after = b.Stats()
			case "close":
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				after = b.Stats()
			case "commit":
				// Delivered: committing the held batch, then rewinding,
				// drops nothing more.
				if err := b.Commit(held.Cursor); err != nil {
					t.Fatal(err)
				}
				if err := b.Rewind(); err != nil {
					t.Fatal(err)
				}
				if s := b.Stats(); s.Dropped != before.Dropped || s.DroppedGroups != before.DroppedGroups {
					t.Fatalf("after delivering the held batch: stats %+v, want the drops of %+v", s, before)
				}
				return
			}
			if after.Dropped != before.Dropped+3 || after.DroppedGroups != before.DroppedGroups+3 {
				t.Fatalf("after %s: dropped %d (%d groups), want %d (%d): the 3 held records were never delivered",
					giveBack, after.Dropped, after.DroppedGroups, before.Dropped+3, before.DroppedGroups+3)
			}
			if giveBack == "rewind" {
				// Counted once: a second rewind adds nothing.
				if err := b.Rewind(); err != nil {
					t.Fatal(err)
				}
				if s := b.Stats(); s.Dropped != after.Dropped {
					t.Fatalf("second rewind: dropped %d, want %d", s.Dropped, after.Dropped)
				}
			}
		})
	}
}
