package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// numbered is a record carrying n, padded to about 1 KiB.
func numbered(n uint64) []message.Message {
	p := make([]byte, 1024)
	binary.LittleEndian.PutUint64(p, n)
	return []message.Message{{Payload: p}}
}

// TestDiskFullBlocks: on a 1 MiB file system, a buffer allowed 64 MiB
// fills the disk; Append then waits (the source is back-pressured) instead
// of failing, resumes once the reader frees a segment, and nothing is lost,
// repeated or corrupted: a reopen finds nothing to repair.
func TestDiskFullBlocks(t *testing.T) {
	dir := testkit.Tmpfs(t, 1<<20)
	opts := Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 128 << 10}
	b, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var appended atomic.Uint64
	const total = 3000 // about 3 MiB: three times the disk
	errc := make(chan error, 1)
	go func() {
		for n := range uint64(total) {
			if err := b.Append(ctx, numbered(n), nil); err != nil {
				errc <- err
				return
			}
			appended.Add(1)
		}
		errc <- nil
	}()
	testkit.WaitFor(t, "the disk to fill", func() bool { return b.Stats().DiskFull })
	stalled := appended.Load()
	if stalled == 0 || stalled >= total {
		t.Fatalf("%d appended when the disk filled", stalled)
	}
	select {
	case err := <-errc:
		t.Fatalf("Append returned %v on a full disk; want it to wait", err)
	default:
	}

	// Drain everything, in order, while the appender goes on.
	next := uint64(0)
	for next < total {
		batch, err := b.Read(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range batch.Msgs {
			if got := binary.LittleEndian.Uint64(m.Payload); got != next {
				t.Fatalf("read record %d, want %d: lost or out of order", got, next)
			}
			next++
		}
		if err := b.Commit(batch.Cursor); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	st := b.Stats()
	if st.DiskFull || st.DiskFullWaits == 0 || st.Lost != 0 || st.Dropped != 0 {
		t.Fatalf("after the drain: %+v", st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if r := b.Recovery(); len(r.Notes) != 0 || r.Records != 0 {
		t.Fatalf("reopen after a full disk found repairs to make: %+v", r)
	}
}

// TestDiskFullBlockedAppendEndsWithContext: an Append waiting for space
// returns when its context ends, saying the disk is full, and the buffer
// stays usable.
func TestDiskFullBlockedAppendEndsWithContext(t *testing.T) {
	dir := testkit.Tmpfs(t, 256<<10)
	b, err := Open(Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 32 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var n uint64
	done := make(chan error, 1)
	go func() {
		for ; ; n++ {
			if err := b.Append(ctx, numbered(n), nil); err != nil {
				done <- err
				return
			}
		}
	}()
	testkit.WaitFor(t, "the disk to fill", func() bool { return b.Stats().DiskFull })
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Append on a full disk after cancel: %v", err)
	}
	if err.Error() == "" || !contains(err.Error(), "file system is full") {
		t.Fatalf("error does not say the disk is full: %v", err)
	}
	// Everything appended before is intact.
	batch, err := b.Read(context.Background(), int(n)+1)
	if err != nil || len(batch.Msgs) == 0 {
		t.Fatalf("read after a full disk: %d records, %v", len(batch.Msgs), err)
	}
}

// TestDiskFullDropOldest: under drop_oldest a full disk drops the oldest
// segment, counted, instead of waiting.
func TestDiskFullDropOldest(t *testing.T) {
	dir := testkit.Tmpfs(t, 512<<10)
	b, err := Open(Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 64 << 10, WhenFull: DropOldest, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const total = 2000 // 2 MiB on a 512 KiB disk
	for n := range uint64(total) {
		if err := b.Append(context.Background(), numbered(n), nil); err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
	}
	st := b.Stats()
	if st.Dropped == 0 || st.Records+st.Dropped != total {
		t.Fatalf("%d left + %d dropped, want %d: %+v", st.Records, st.Dropped, total, st)
	}
	// What is left is the newest records, in order.
	batch, err := b.Read(context.Background(), total)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(batch.Msgs[0].Payload); got != st.Dropped {
		t.Fatalf("oldest record left is %d, want %d", got, st.Dropped)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestDiskFullInOneSegmentResumes: a disk smaller than one segment (a 64
// MiB segment on a box with a few MiB free) fills while the first segment
// is written. Once the reader has delivered everything, the appender starts
// a new segment and deletes the delivered one, but the reader still had
// that file open (it waits for more data at its end), so the deletion
// freed nothing: the file system keeps a deleted file's blocks until its
// last descriptor closes. Append then waited for space for good while the
// reader waited for data. It must go on once the backlog is delivered.
func TestDiskFullInOneSegmentResumes(t *testing.T) {
	dir := testkit.Tmpfs(t, 256<<10)
	b, err := Open(Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 8 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var appended atomic.Uint64
	errc := make(chan error, 2)
	go func() {
		for n := uint64(0); ; n++ {
			if err := b.Append(ctx, numbered(n), nil); err != nil {
				errc <- err
				return
			}
			appended.Add(1)
		}
	}()
	testkit.WaitFor(t, "the disk to fill", func() bool { return b.Stats().DiskFull })
	stalled := appended.Load()
	if st := b.Stats(); st.Segments != 1 {
		t.Fatalf("the disk filled with %d segments; the test wants it full inside the first: %+v", st.Segments, st)
	}

	// Deliver everything, in order, as the engine's drain does.
	var read atomic.Uint64
	go func() {
		for next := uint64(0); ; {
			batch, err := b.Read(ctx, 100)
			if err != nil {
				errc <- err
				return
			}
			for _, m := range batch.Msgs {
				if got := binary.LittleEndian.Uint64(m.Payload); got != next {
					errc <- fmt.Errorf("read record %d, want %d: lost or out of order", got, next)
					return
				}
				next++
			}
			if err := b.Commit(batch.Cursor); err != nil {
				errc <- err
				return
			}
			read.Store(next)
		}
	}()
	// Three disks' worth more: the space of delivered segments must come
	// back again and again. diskRetry is 1 s: this takes a few seconds.
	want := stalled + 3*stalled
	if !testkit.Eventually(testkit.DefaultWait, func() bool {
		select {
		case err := <-errc:
			t.Fatalf("append or drain failed: %v", err)
		default:
		}
		return appended.Load() >= want
	}) {
		t.Fatalf("appends stuck at %d (the disk filled at %d, %d delivered) although everything stored was delivered: %+v",
			appended.Load(), stalled, read.Load(), b.Stats())
	}
}

// TestReopenWithoutSegments: a crash after a delivered last segment was
// deleted and before its successor was created (startOverLocked, on a
// full disk) leaves a cursor and no segment. Open created the new segment
// under the cursor's number, so the cursor on disk pointed into it at an
// offset of the old file: once the new records grew past that offset, the
// next Open read on from the middle of a record, took it for a torn tail
// and cut every record stored since. The new segment must come after the
// cursor's.
func TestReopenWithoutSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, MaxSize: 1 << 20}
	b := openT(t, opts)
	appendT(t, b, testMsgs(0, 20))
	batch, err := b.Read(context.Background(), 100)
	if err != nil || len(batch.Msgs) != 20 {
		t.Fatalf("read: %d records, %v", len(batch.Msgs), err)
	}
	if err := b.Commit(batch.Cursor); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, s := range segs {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}

	// Records appended after the restart, not delivered, then a crash
	// (Close syncs no cursor: the records after it are unread).
	b = openT(t, opts)
	for i := 100; i < 160; i++ {
		appendT(t, b, testMsgs(i, 1))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openT(t, opts)
	if r := b.Recovery(); r.TruncatedBytes != 0 || r.Records != 60 {
		t.Fatalf("reopen: %d records kept, %d bytes cut (%v); want the 60 appended since, nothing cut", r.Records, r.TruncatedBytes, r.Notes)
	}
	batch, err = b.Read(context.Background(), 100)
	if err != nil || len(batch.Msgs) != 60 {
		t.Fatalf("read after reopen: %d records, %v; want 60", len(batch.Msgs), err)
	}
	for i, m := range batch.Msgs {
		if n := payloadN(t, m); n != 100+i {
			t.Fatalf("record %d is number %d, want %d", i, n, 100+i)
		}
	}
}

// TestAppendAfterTheDirectoryIsRemoved: the buffer's folder removed while
// it is open (rm -r by hand, a cleaner sweeping a temporary folder) leaves
// its files open but deleted. Append went on returning nil, so the engine
// acknowledged the source's events, while what it wrote went to files
// that no longer exist and that the next start does not see: with a sink
// down, hours of events (until the 64 MiB segment filled) were lost. An
// Append must not report stored what a restart cannot find: it fails,
// saying why, and the buffer opens again afterwards.
func TestAppendAfterTheDirectoryIsRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buffer")
	for _, noSync := range []bool{false, true} {
		opts := Options{Dir: dir, MaxSize: 1 << 20, NoSync: noSync}
		b := openT(t, opts)
		appendT(t, b, testMsgs(0, 3))
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		err := b.Append(context.Background(), testMsgs(3, 1), nil)
		if err == nil || !strings.Contains(err.Error(), "deleted") {
			t.Fatalf("NoSync %v: Append after the folder was removed: %v; want an error saying the files were deleted", noSync, err)
		}
		if err := b.Append(context.Background(), testMsgs(4, 1), nil); err == nil {
			t.Fatalf("NoSync %v: a second Append after the folder was removed succeeded", noSync)
		}
		// The drain learns it too, at its first read of a file it does
		// not hold open.
		if _, err := b.Read(context.Background(), 10); err == nil || !strings.Contains(err.Error(), "deleted") {
			t.Fatalf("NoSync %v: Read after the folder was removed: %v; want an error saying the files were deleted", noSync, err)
		}
		b.Close()
		b = openT(t, opts)
		appendT(t, b, testMsgs(5, 1))
		if st := b.Stats(); st.Records != 1 {
			t.Fatalf("NoSync %v: after reopening, %d records; want the one appended since", noSync, st.Records)
		}
		b.Close()
	}
}

// TestDiskFullDropOldestFreesTheSegmentTheDrainHolds: with the sink down,
// the drain holds a batch read from the oldest segment and keeps that
// segment file open. When the disk filled, drop_oldest deleted that
// segment, but its blocks stayed allocated under the open descriptor, so
// the write failed again and a second segment of unread events was
// dropped at once; the first one's space stayed taken for as long as the
// outage lasted. A drop must free the space it was made for.
func TestDiskFullDropOldestFreesTheSegmentTheDrainHolds(t *testing.T) {
	dir := testkit.Tmpfs(t, 256<<10)
	b, err := Open(Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 32 << 10, WhenFull: DropOldest, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	n := uint64(0)
	for ; b.Stats().Segments < 3; n++ {
		if err := b.Append(ctx, numbered(n), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The drain reads one record of the oldest segment and is stuck
	// delivering it.
	if batch, err := b.Read(ctx, 1); err != nil || len(batch.Msgs) != 1 {
		t.Fatalf("read: %d records, %v", len(batch.Msgs), err)
	}
	oldest := uint64(firstIndex(t, segFiles(t, dir)[1])) // records in the oldest segment
	for ; b.Stats().Dropped == 0; n++ {
		if n > 10000 {
			t.Fatalf("nothing dropped after %d appends on a 256 KiB disk: %+v", n, b.Stats())
		}
		if err := b.Append(ctx, numbered(n), nil); err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
	}
	if st := b.Stats(); st.Dropped != oldest-1 {
		t.Fatalf("the first drop removed %d unread records; want %d, the oldest segment's less the one the drain holds: %+v", st.Dropped, oldest-1, st)
	}
}

// fillDisk writes a file in dir until the file system refuses more, and
// returns its path: another program filling the disk.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !isNoSpace(err) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestOpenOnAFullDisk: a buffer opened on a disk another program has
// filled (a box restarted with its disk full, or a crash after the last,
// delivered segment was deleted and before the next was created) has no
// segment and no room to create one. Open failed ("no space left on
// device") and the task with it, for good, where a full disk while running
// only makes the source wait: it must open, make Append wait for space,
// and carry on once space is freed.
func TestOpenOnAFullDisk(t *testing.T) {
	mnt := testkit.Tmpfs(t, 256<<10)
	opts := Options{Dir: filepath.Join(mnt, "buf"), MaxSize: 64 << 20}
	filler := fillDisk(t, mnt)
	b, err := Open(opts)
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- b.Append(ctx, numbered(7), nil) }()
	testkit.WaitFor(t, "the append to wait for space", func() bool { return b.Stats().DiskFull })
	select {
	case err := <-errc:
		t.Fatalf("Append on a full disk returned %v; want it to wait", err)
	default:
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("append once space was freed: %v", err)
	}
	batch, err := b.Read(ctx, 10)
	if err != nil || len(batch.Msgs) != 1 || binary.LittleEndian.Uint64(batch.Msgs[0].Payload) != 7 {
		t.Fatalf("read after the append: %d records, %v", len(batch.Msgs), err)
	}
	if err := b.Commit(batch.Cursor); err != nil {
		t.Fatal(err)
	}
	if n, segs := dirBytes(t, opts.Dir); b.Stats().Bytes != n || b.Stats().Segments != segs {
		t.Fatalf("stats %+v, the folder holds %d bytes in %d segments", b.Stats(), n, segs)
	}
}

// TestDiskFullDropOldestSparesUnreadRecordsDuringCommit: under
// drop_oldest, an Append refused by a full disk while a Commit is deleting
// the segments it delivered must wait for that space, as it does when the
// buffer is full by max_size (TestDropOldestSparesUnreadRecordsDuringCommit):
// it dropped the oldest segment left, unread, though the Commit was about
// to free more than it needed.
func TestDiskFullDropOldestSparesUnreadRecordsDuringCommit(t *testing.T) {
	mnt := testkit.Tmpfs(t, 512<<10)
	big := func(n uint64) []message.Message { // 8 KiB: always needs new blocks
		p := make([]byte, 8<<10)
		binary.LittleEndian.PutUint64(p, n)
		return []message.Message{{Payload: p}}
	}
	for round := range 50 {
		dir := filepath.Join(mnt, fmt.Sprint(round))
		b := openT(t, Options{Dir: dir, MaxSize: 64 << 20, SegmentSize: 16 << 10, WhenFull: DropOldest, NoSync: true})
		n := uint64(0)
		for ; b.Stats().Segments < 5; n++ {
			if err := b.Append(context.Background(), big(n), nil); err != nil {
				t.Fatal(err)
			}
		}
		filler := fillDisk(t, mnt)
		b.mu.Lock()
		first := b.segs[1].start.index - b.segs[0].start.index
		b.mu.Unlock()
		batch, err := b.Read(context.Background(), int(first)) // the first segment's records
		if err != nil {
			t.Fatal(err)
		}
		commitBesideAppend(t, b, batch.Cursor, big(n))
		// Taking the lock first, the Append drops the first segment, read
		// (not counted); after the Commit, it finds the space freed. Only
		// inside the Commit's window could it drop an unread record.
		if s := b.Stats(); s.Dropped != 0 {
			t.Fatalf("round %d: %d unread records dropped on a full disk while a Commit freed a delivered segment (stats %+v)", round, s.Dropped, s)
		}
		b.Close()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFullClearsWhenTheWaitEnds: Stats.Full (the sluice_buffer_full gauge)
// says an append waits for room; once the only waiting append gives up (a
// stop, a halted task), it reads false again, although the disk is still
// full. Before, it stayed set until an append next went through.
func TestFullClearsWhenTheWaitEnds(t *testing.T) {
	mnt := testkit.Tmpfs(t, 1<<20)
	fillDisk(t, mnt)
	b, err := Open(Options{Dir: filepath.Join(mnt, "buf"), MaxSize: 64 << 20})
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Append(ctx, numbered(7), nil) }()
	testkit.WaitFor(t, "the append to wait for space", func() bool { return b.Stats().Full })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("append after its context ended: %v", err)
	}
	if st := b.Stats(); st.Full {
		t.Fatalf("Stats.Full still set with no append waiting: %+v", st)
	}
}
