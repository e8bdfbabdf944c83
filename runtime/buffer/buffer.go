package buffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/statedir"
)

// WhenFull is what Append does when a batch does not fit under MaxSize.
type WhenFull string

// The policies of WhenFull.
const (
	// Block makes Append wait until the reader commits enough to free a
	// segment (or its context ends). Nothing is lost; the source slows down.
	Block WhenFull = "block"
	// DropOldest deletes the oldest segments, read or not, until the batch
	// fits, and counts the unread records it deleted (Stats.Dropped).
	DropOldest WhenFull = "drop_oldest"
)

// Defaults of Options.
const (
	DefaultMaxSize     = 1 << 30
	DefaultSegmentSize = 64 << 20
	DefaultReadBytes   = 4 << 20

	minMaxSize     = 4 << 10
	minSegmentSize = 1 << 10
)

// Options configure a Buffer.
type Options struct {
	// Dir holds the buffer's files; it is created if missing. One Buffer
	// per directory: Open fails with ErrLocked if another has it open.
	Dir string
	// MaxSize caps the bytes of all segment files (records not yet
	// deleted, framing and headers included). Default 1 GiB, minimum 4 KiB.
	MaxSize int64
	// SegmentSize is the size at which a new segment file is started.
	// Space is reclaimed one whole segment at a time, so it is the
	// granularity of both block and drop_oldest. Default MaxSize/8 capped at
	// 64 MiB; it must be at most MaxSize/2. One Append never spans two
	// segments, so a segment grows past SegmentSize when a single batch is
	// larger.
	SegmentSize int64
	// WhenFull is Block (the default) or DropOldest.
	WhenFull WhenFull
	// NoSync skips the fsync that makes each Append and Commit durable
	// before it returns. Data then survives a crash of the process (it is in
	// the OS page cache) but not of the machine.
	NoSync bool
	// ReadBytes caps the record bytes of one Read batch (a batch always
	// holds at least one record). Default 4 MiB.
	ReadBytes int64
	// Now is the clock of the backlog's age (Stats.Oldest); nil means
	// time.Now. Tests simulate a long outage with it.
	Now func() time.Time
	// Logger receives the recovery report and warnings about dropped or
	// corrupt data. The zero value logs nothing.
	Logger zerolog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("no directory given")
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxSize < minMaxSize {
		return o, fmt.Errorf("max size %d is below the minimum of %d bytes", o.MaxSize, minMaxSize)
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = min(max(o.MaxSize/8, minSegmentSize), DefaultSegmentSize)
	}
	if o.SegmentSize < minSegmentSize || o.SegmentSize > o.MaxSize/2 {
		return o, fmt.Errorf("segment size %d must be between %d bytes and half the max size (%d)", o.SegmentSize, minSegmentSize, o.MaxSize/2)
	}
	switch o.WhenFull {
	case "":
		o.WhenFull = Block
	case Block, DropOldest:
	default:
		return o, fmt.Errorf("unknown when_full policy %q (want %q or %q)", o.WhenFull, Block, DropOldest)
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = DefaultReadBytes
	}
	return o, nil
}

// Tag is the engine's bookkeeping for one record, stored with it and handed
// back by Read. The buffer does not interpret Group. Last marks the final
// record of a group (the last output of one source event, say); the buffer
// counts Last records so that it can report how many groups a drop or a
// corruption removed (Stats.DroppedGroups, Stats.LostGroups). The records of
// a group should be appended in one call: drop_oldest deletes whole
// segments and one Append never spans two, so a group is then never split
// by a drop, unless the reader had already read part of it.
type Tag struct {
	Group uint32
	Last  bool
}

// Cursor marks the end of a Batch; Commit takes it.
type Cursor struct{ p pos }

// Batch is what Read returns: records in append order with their tags.
// The byte slices of Msgs point into memory owned by this batch alone: the
// buffer never reuses it, so they stay valid for as long as the caller keeps
// them. Message.Time is in UTC (the instant is kept exactly, the location is
// not); Err and Ref are zero.
type Batch struct {
	Msgs   []message.Message
	Tags   []Tag
	Cursor Cursor
	// Gap is set when records between the previous Batch and this one were
	// dropped (drop_oldest) or lost (corruption): a group the previous
	// Batch ended inside of is never completed.
	Gap bool
}

// Stats is a snapshot of a Buffer.
type Stats struct {
	// Records were appended and not yet committed.
	Records uint64
	// Unread were appended and not yet returned by Read.
	Unread uint64
	// Bytes is the size of all segment files.
	Bytes int64
	// Segments is the number of segment files.
	Segments int
	// Oldest is when the oldest record not yet committed was appended
	// (zero when there is none). While the process runs it is exact to
	// the second for a backlog appended over up to an hour (4096 marks),
	// and errs on the old side by less than a thousandth of a longer one
	// (48 s after a day of appends); after a restart, records from before
	// it are dated by
	// the first append of their segment (or, for segments of builds
	// without that field, the segment file's modification time).
	Oldest time.Time
	// Full is set while appends wait for room (max_size reached under
	// when_full = block, a commit's deletions under drop_oldest, or the
	// file system full): the source is held back.
	Full bool
	// DiskFull is set while appends wait because the file system is full
	// before MaxSize; DiskFullWaits counts the writes it refused.
	DiskFull      bool
	DiskFullWaits uint64
	// Dropped counts unread records deleted by the drop_oldest policy since
	// Open, and records read but given back undelivered (Rewind, Close)
	// after drop_oldest deleted their segment; DroppedGroups counts those
	// of them that carried Tag.Last.
	Dropped, DroppedGroups uint64
	// Lost counts records skipped because they were found corrupt while
	// reading (see the package documentation); LostGroups those with
	// Tag.Last. Both stay zero unless the disk or the OS misbehaved.
	Lost, LostGroups uint64
}

// span is the records from from to to (exclusive).
type span struct{ from, to pos }

// segment is one segment file.
type segment struct {
	seq   uint64
	start pos    // its first record
	size  int64  // bytes written, header included
	born  uint32 // as in the header
}

// mark says that record index was appended at unix (nanoseconds), and every
// later record at or after it: the age of the backlog is read off the last
// mark at or before the commit position.
type mark struct {
	index uint64
	unix  int64
}

// maxMarks bounds the marks kept: one per second of appends at most; past
// this many the marks are thinned to twice the spacing, which new marks
// then keep too (the age then errs on the old side, by at most one and a
// half times that spacing: 48 s after a day of appends).
const maxMarks = 4096

// Buffer is a persistent FIFO of messages; see the package documentation.
type Buffer struct {
	dir       string
	opts      Options
	log       zerolog.Logger
	lock      *os.File
	recovery  Recovery
	encBuffer sync.Pool

	mu      sync.Mutex
	segs    []*segment    // oldest first; the last one is appended to
	wf      *os.File      // write handle of the last segment
	used    int64         // bytes of all segment files
	written pos           // end of the last write
	durable pos           // end of the data Read may return
	read    pos           // next record Read returns
	commit  pos           // everything before it was delivered
	writes  uint64        // completed writes
	synced  uint64        // writes known to be on disk
	dropGen uint64        // bumped when a drop moves read
	marks   []mark        // append times, oldest first; see mark
	markGap time.Duration // least spacing of marks (0: a second); see maxMarks
	failed  error         // sticky: a failed fsync leaves the file state unknown
	closed  bool
	// diskFull is set while appends wait because the file system refused
	// a write for want of space; diskFullCount counts those refusals.
	diskFull      bool
	diskFullCount uint64
	diskLogAt     time.Time
	dataCh        chan struct{} // closed when durable advances (and on Close)
	spaceCh       chan struct{} // closed when space is freed (and on Close)
	freeing       int64         // bytes of delivered segments a Commit is deleting
	waiting       int           // Appends waiting for space (max_size, or the file system full)
	ops           sync.WaitGroup

	dropped, droppedGroups, lost, lostGroups uint64
	// held are the ranges of records drop_oldest deleted while the reader
	// had them read and not committed: not dropped while the drain may
	// still deliver them from memory, dropped when it gives them back
	// (Rewind, Close) instead of committing them.
	held []span

	syncMu sync.Mutex // one fsync leader at a time

	commitMu sync.Mutex // serializes cursor writes
	cursor   *cursorFile

	// Reader state, owned by the Read in progress (readMu).
	readMu sync.Mutex
	rf     *os.File
	rseq   uint64
	rok    bool // the scanner is positioned at sc.off of segment rseq
	// readEnd is where the last Batch returned ended (readAny: one was).
	readEnd pos
	readAny bool
	sr      segReader
	sc      scanner
	dec     decodeState
}

// segPath is the file of segment seq: 20 decimal digits sort by name.
func (b *Buffer) segPath(seq uint64) string {
	return filepath.Join(b.dir, fmt.Sprintf("%020d.seg", seq))
}

// wake closes *ch, waking everyone waiting on it, and replaces it.
func wake(ch *chan struct{}) {
	close(*ch)
	*ch = make(chan struct{})
}

// enterLocked registers a call that Close must wait for.
func (b *Buffer) enterLocked() error {
	if b.closed {
		return ErrClosed
	}
	b.ops.Add(1)
	return nil
}

// Recovery returns what Open found and repaired.
func (b *Buffer) Recovery() Recovery { return b.recovery }

// Stats returns a snapshot of the buffer's counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var oldest time.Time
	if b.written.index > b.commit.index && len(b.marks) > 0 {
		oldest = time.Unix(0, b.marks[0].unix)
	}
	return Stats{
		Oldest:        oldest,
		Full:          b.waiting > 0,
		DiskFull:      b.diskFull,
		DiskFullWaits: b.diskFullCount,
		Records:       b.written.index - b.commit.index,
		Unread:        b.written.index - b.read.index,
		Bytes:         b.used,
		Segments:      len(b.segs),
		Dropped:       b.dropped,
		DroppedGroups: b.droppedGroups,
		Lost:          b.lost,
		LostGroups:    b.lostGroups,
	}
}

// Append adds msgs at the end of the buffer, in order and contiguously even
// when other goroutines append at the same time. tags is nil (each record
// gets Tag{Last: true}) or holds one tag per message.
//
// The batch is all or nothing: when Append returns nil every record is
// stored (on disk unless NoSync), and a crash in the middle of an Append
// leaves none of its records after recovery. When the buffer is full,
// Append waits (Block, until ctx ends) or drops the oldest segments
// (DropOldest). It fails with ErrTooLarge for a batch that could never fit.
func (b *Buffer) Append(ctx context.Context, msgs []message.Message, tags []Tag) error {
	if len(msgs) == 0 {
		return nil
	}
	if tags != nil && len(tags) != len(msgs) {
		return fmt.Errorf("append to disk buffer %s: %d tags for %d messages (give one tag per message, or nil)", b.dir, len(tags), len(msgs))
	}
	bp, _ := b.encBuffer.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := (*bp)[:0]
	var lasts uint64
	for i := range msgs {
		tag := Tag{Last: true}
		if tags != nil {
			tag = tags[i]
		}
		if tag.Last {
			lasts++
		}
		start := len(buf)
		buf = appendFrame(buf, &msgs[i], tag, i == len(msgs)-1)
		if n := len(buf) - start - frameOverhead; n > MaxRecordSize {
			return fmt.Errorf("append to disk buffer %s: record %d encodes to %d bytes, over the %d-byte limit: %w", b.dir, i, n, MaxRecordSize, ErrTooLarge)
		}
	}
	err := b.append(ctx, buf, uint64(len(msgs)), lasts)
	if cap(buf) <= 4<<20 { // do not pin the memory of one huge batch
		*bp = buf
		b.encBuffer.Put(bp)
	}
	return err
}

// Fits reports, with an error wrapping ErrTooLarge, whether Append would
// refuse msgs as too large (a record over MaxRecordSize, or a batch that
// could never fit under MaxSize), without appending anything. A caller that
// must not append part of a group of records checks the group first.
func (b *Buffer) Fits(msgs []message.Message) error {
	// Nearly every batch is far under the limits: an upper bound settles
	// it without comparing each event with its payload (which reads both,
	// at every flush).
	var bound int64
	for i := range msgs {
		n := frameSizeAt(&msgs[i], false)
		if n-frameOverhead > MaxRecordSize {
			bound = b.opts.MaxSize // decide exactly below
			break
		}
		bound += int64(n)
	}
	if bound+headerSize <= b.opts.MaxSize {
		return nil
	}
	var need int64
	for i := range msgs {
		n := frameSize(&msgs[i])
		if n-frameOverhead > MaxRecordSize {
			return fmt.Errorf("append to disk buffer %s: record %d encodes to %d bytes, over the %d-byte limit: %w", b.dir, i, n-frameOverhead, MaxRecordSize, ErrTooLarge)
		}
		need += int64(n)
	}
	if need+headerSize > b.opts.MaxSize {
		return fmt.Errorf("append to disk buffer %s: batch of %d records encodes to %d bytes, more than max_size %d allows: %w", b.dir, len(msgs), need, b.opts.MaxSize, ErrTooLarge)
	}
	return nil
}

func (b *Buffer) append(ctx context.Context, buf []byte, n, lasts uint64) error {
	need := int64(len(buf))
	if need+headerSize > b.opts.MaxSize {
		return fmt.Errorf("append to disk buffer %s: batch of %d records encodes to %d bytes, more than max_size %d allows: %w", b.dir, n, need, b.opts.MaxSize, ErrTooLarge)
	}
	b.mu.Lock()
	if err := b.enterLocked(); err != nil {
		b.mu.Unlock()
		return err
	}
	defer b.ops.Done()
	var act *segment
	var now time.Time
	for {
		if err := b.reserveLocked(ctx, need); err != nil {
			return err
		}
		act = b.segs[len(b.segs)-1]
		now = b.now()
		if act.size == headerSize && act.born != unixSeconds(now) {
			// The segment's first records: date it (it may have been
			// created empty long ago, at Open). The header is rewritten
			// in place and synced with the records; a torn header can
			// only come with a crash before this Append returned, and
			// only costs this Append.
			hdr := segHeader{seq: act.seq, firstIndex: act.start.index, firstGroups: act.start.groups, born: unixSeconds(now)}.append(nil)
			if _, err := b.wf.WriteAt(hdr, 0); err != nil {
				b.mu.Unlock()
				return fmt.Errorf("append to disk buffer %s: date %s: %w", b.dir, filepath.Base(b.segPath(act.seq)), err)
			}
			act.born = unixSeconds(now)
		}
		_, err := b.wf.WriteAt(buf, act.size)
		if err == nil {
			break
		}
		// Cut what was written so the next append starts on a frame
		// boundary; if even that fails the file can no longer be trusted.
		if terr := b.wf.Truncate(act.size); terr != nil {
			b.failed = fmt.Errorf("disk buffer %s is unusable after a failed write (%v) and a failed repair (%v); restart the task to recover", b.dir, err, terr)
		} else if isNoSpace(err) {
			// The disk is full before max_size: nothing of this append
			// is kept; wait as for a full buffer, then write it again.
			if err := b.waitForDiskLocked(ctx, err); err != nil {
				return err
			}
			continue
		}
		b.mu.Unlock()
		return fmt.Errorf("append to disk buffer %s: write %s: %w", b.dir, filepath.Base(b.segPath(act.seq)), err)
	}
	if unlinked(b.wf) {
		// The folder was removed (or the file deleted) under the open
		// buffer: the write succeeded into a file no start will find.
		// Reporting it stored would have the source's events acknowledged
		// and lost; one fstat per Append is little next to the write.
		b.failed = fmt.Errorf("disk buffer %s: its files were deleted while the task ran (the folder removed?): nothing more is stored; restart the task, which creates the folder again (events stored before and not delivered are gone)", b.dir)
		b.mu.Unlock()
		return b.failed
	}
	act.size += need
	b.used += need
	b.diskFull = false
	b.addMarkLocked(b.written.index, now)
	b.written = pos{act.seq, act.size, b.written.index + n, b.written.groups + lasts}
	b.writes++
	my := b.writes
	if b.opts.NoSync {
		b.publishLocked(b.written)
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	return b.syncUpTo(my)
}

// reserveLocked makes room for need more bytes in the last segment,
// rotating, dropping or waiting as the policy says. It is called with b.mu
// held and returns with it held, unless it returns an error.
func (b *Buffer) reserveLocked(ctx context.Context, need int64) error {
	// retry runs a step that makes a new segment (rotateLocked, or
	// startOverLocked, which replaces the last segment, all of it
	// delivered); a full file system makes it wait as for a full buffer
	// (ok false: try again).
	retry := func(step func() error) (ok bool, err error) {
		err = step()
		if err == nil {
			return true, nil
		}
		if !isNoSpace(err) {
			b.mu.Unlock()
			return false, err
		}
		return false, b.waitForDiskLocked(ctx, err)
	}
	rotate := func() (bool, error) { return retry(b.rotateLocked) }
	startOver := func() (bool, error) { return retry(b.startOverLocked) }
	for {
		if b.failed != nil {
			err := b.failed
			b.mu.Unlock()
			return err
		}
		if b.wf == nil {
			// A start over deleted the last segment and could not create
			// the next one yet.
			if ok, err := startOver(); err != nil {
				return err
			} else if !ok {
				continue
			}
		}
		act := b.segs[len(b.segs)-1]
		full := act.size > headerSize && act.size+need > b.opts.SegmentSize
		extra := need
		if full {
			extra += headerSize
		}
		if b.used+extra <= b.opts.MaxSize {
			if !full {
				return nil
			}
			if ok, err := rotate(); ok || err != nil {
				return err
			}
			continue
		}
		if b.commit.index == b.written.index && act.size > headerSize {
			// Everything was delivered but the last segment, still being
			// written to, holds the space: replace it with a new one.
			if _, err := startOver(); err != nil {
				return err
			}
			continue
		}
		if b.opts.WhenFull == DropOldest && b.freeing == 0 {
			if len(b.segs) > 1 {
				if err := b.dropOldestLocked(); err != nil {
					b.mu.Unlock()
					return err
				}
			} else if _, err := rotate(); err != nil { // so that the full segment can be dropped
				return err
			}
			continue
		}
		ch := b.spaceCh
		b.waiting++
		b.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("append to disk buffer %s: full (%d of %d bytes), waiting for the sink to catch up: %w", b.dir, b.usedNow(), b.opts.MaxSize, ctx.Err())
		}
		b.mu.Lock()
		b.waiting--
		if err != nil {
			b.mu.Unlock()
			return err
		}
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
	}
}

// diskRetry is how often an Append held by a full disk tries again when
// nothing the buffer does frees space (another program filled the disk).
const diskRetry = time.Second

// waitForDiskLocked handles a write the file system refused for want of
// space (cause): the disk is full before max_size. Under drop_oldest the
// oldest segment goes, if there is one besides the one written to; under
// block (or with nothing to drop) it waits for the drain to free a segment,
// or diskRetry, or the end of ctx. It is called with b.mu held and returns
// with it held, unless it returns an error (then b.mu is released).
func (b *Buffer) waitForDiskLocked(ctx context.Context, cause error) error {
	b.diskFullCount++
	// Once a minute at most: a disk that stays full refuses a write every
	// time the drain frees a segment.
	if now := b.now(); !b.diskFull && (b.diskLogAt.IsZero() || now.Sub(b.diskLogAt) >= time.Minute) {
		b.diskLogAt = now
		b.log.Warn().Err(cause).Str(logx.File, b.dir).Int64("bytes", b.used).Int64("max_size", b.opts.MaxSize).
			Uint64("refused_writes", b.diskFullCount).Str("when_full", string(b.opts.WhenFull)).
			Msg("disk buffer: the file system is full before max_size; the buffer takes no more until space is freed (block: the source waits; drop_oldest: the oldest segment goes), nothing stored is corrupted (reported at most once a minute)")
	}
	b.diskFull = true
	if act := b.segs[len(b.segs)-1]; b.wf != nil && b.commit.index == b.written.index && act.size > headerSize {
		// Everything stored was delivered, and the last segment holds
		// the space: take it back. Without this a disk smaller than a
		// segment stayed full for good (the files are under max_size,
		// so nothing else frees the segment being written to).
		err := b.startOverLocked()
		if err == nil {
			return nil
		}
		if !isNoSpace(err) {
			b.mu.Unlock()
			return err
		}
	}
	// A Commit deleting delivered segments (freeing) is about to give back
	// space: wait for it, as reserveLocked does, rather than drop unread
	// records for room that is on its way.
	if b.opts.WhenFull == DropOldest && len(b.segs) > 1 && b.freeing == 0 {
		if err := b.dropOldestLocked(); err != nil {
			b.mu.Unlock()
			return err
		}
		return nil
	}
	ch := b.spaceCh
	b.waiting++
	b.mu.Unlock()
	timer := time.NewTimer(diskRetry)
	defer timer.Stop()
	var err error
	select {
	case <-ch:
	case <-timer.C:
	case <-ctx.Done():
		err = fmt.Errorf("append to disk buffer %s: the file system is full (%v), waiting for space: %w", b.dir, cause, ctx.Err())
	}
	b.mu.Lock()
	b.waiting--
	if err != nil {
		b.mu.Unlock()
		return err
	}
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func (b *Buffer) now() time.Time {
	if b.opts.Now != nil {
		return b.opts.Now()
	}
	return time.Now()
}

func unixSeconds(t time.Time) uint32 {
	s := t.Unix()
	if s <= 0 || s > 1<<32-1 {
		return 0
	}
	return uint32(s)
}

// addMarkLocked notes that record index was appended at t, unless the last
// mark is less than the marks' spacing (a second, until they are thinned)
// older.
func (b *Buffer) addMarkLocked(index uint64, t time.Time) {
	if n := len(b.marks); n > 0 && t.UnixNano()-b.marks[n-1].unix < int64(max(b.markGap, time.Second)) {
		return
	}
	for len(b.marks) >= maxMarks {
		b.thinMarksLocked()
	}
	b.marks = append(b.marks, mark{index, t.UnixNano()})
	// Appended to a buffer whose records were all delivered: this mark now
	// dates the oldest record left, not the delivered one before it (the
	// backlog's age read hours too old after an idle spell).
	b.pruneMarksLocked()
}

// thinMarksLocked doubles the spacing of the marks: it keeps the first (the
// age of the oldest record) and each one at least the new spacing after the
// last kept, and later marks keep that spacing. A record is then appended
// less than the new spacing plus the old one after the mark kept before it.
// Keeping every other mark instead, while new ones kept coming a second
// apart, thinned the oldest marks again at every round: after a day of
// appends one mark stood for hours of records.
func (b *Buffer) thinMarksLocked() {
	b.markGap = 2 * max(b.markGap, time.Second)
	k := 1
	for i := 1; i < len(b.marks); i++ {
		if b.marks[i].unix-b.marks[k-1].unix >= int64(b.markGap) {
			b.marks[k] = b.marks[i]
			k++
		}
	}
	b.marks = b.marks[:k]
}

// pruneMarksLocked forgets the marks of committed records, keeping the
// last one at or before the commit position, which dates the oldest
// record left.
func (b *Buffer) pruneMarksLocked() {
	i := 0
	for i+1 < len(b.marks) && b.marks[i+1].index <= b.commit.index {
		i++
	}
	if i > 0 {
		b.marks = slices.Delete(b.marks, 0, i)
	}
	if len(b.marks) <= 1 {
		// The backlog is back within one mark: a second apart again.
		b.markGap = 0
	}
}

func (b *Buffer) usedNow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// syncUpTo returns once write number my is on disk. Appenders that wait at
// the same time share one fsync (group commit): the leader syncs every
// write done so far and publishes them all to the reader.
func (b *Buffer) syncUpTo(my uint64) error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	if b.synced >= my {
		b.mu.Unlock()
		return nil
	}
	if b.failed != nil {
		err := b.failed
		b.mu.Unlock()
		return err
	}
	target, end, f := b.writes, b.written, b.wf
	b.mu.Unlock()
	err := datasync(f)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.synced >= target {
		return nil // a rotation synced (and closed) the file meanwhile
	}
	if err != nil {
		b.failed = fmt.Errorf("disk buffer %s is unusable after a failed fsync (%v); restart the task to recover", b.dir, err)
		return b.failed
	}
	b.synced = target
	b.publishLocked(end)
	return nil
}

// publishLocked lets Read see the records before p.
func (b *Buffer) publishLocked(p pos) {
	if p.index <= b.durable.index {
		return
	}
	b.durable = p
	wake(&b.dataCh)
}

// rotateLocked seals the last segment and starts a new one.
func (b *Buffer) rotateLocked() error {
	old := b.segs[len(b.segs)-1]
	if !b.opts.NoSync {
		if err := datasync(b.wf); err != nil {
			b.failed = fmt.Errorf("disk buffer %s is unusable after a failed fsync (%v); restart the task to recover", b.dir, err)
			return b.failed
		}
		b.synced = b.writes
	}
	b.publishLocked(b.written)
	seq := old.seq + 1
	start := pos{seq, headerSize, b.written.index, b.written.groups}
	f, err := b.createSegment(start)
	if err != nil {
		return fmt.Errorf("append to disk buffer %s: start a new segment: %w", b.dir, err)
	}
	if err := b.wf.Close(); err != nil {
		b.log.Warn().Err(err).Str(logx.File, b.segPath(old.seq)).Msg("disk buffer: closing a full segment failed")
	}
	b.wf = f
	b.segs = append(b.segs, &segment{seq: seq, start: start, size: headerSize, born: unixSeconds(b.now())})
	b.used += headerSize
	b.written = start
	return nil
}

// startOverLocked replaces the last segment, every record of which was
// delivered, with a new empty one, to free its space. The old file is
// deleted before the new one is created: on a full file system creating a
// file needs space that only the old one can give back, and a deleted
// file keeps its blocks until its last descriptor is closed, so the write
// handle is closed first (the reader closes its own whenever it waits for
// data, Read). Rotating first, as rotateLocked does, waited for good on a
// disk smaller than one segment. When creating the new segment fails, b.wf
// stays nil and the next call tries again; a crash in between leaves no
// segment, and Open starts a new one after the cursor's.
func (b *Buffer) startOverLocked() error {
	old := b.segs[len(b.segs)-1]
	if b.wf != nil {
		if err := b.wf.Close(); err != nil {
			b.log.Warn().Err(err).Str(logx.File, b.segPath(old.seq)).Msg("disk buffer: closing a delivered segment failed")
		}
		b.wf = nil
		// A failure is left to removeConsumedLocked, which tries again
		// once the new segment exists and logs it.
		os.Remove(b.segPath(old.seq))
	}
	start := pos{old.seq + 1, headerSize, b.written.index, b.written.groups}
	f, err := b.createSegment(start)
	if err != nil {
		return fmt.Errorf("append to disk buffer %s: start a new segment: %w", b.dir, err)
	}
	b.wf = f
	b.segs = append(b.segs, &segment{seq: start.seq, start: start, size: headerSize, born: unixSeconds(b.now())})
	b.used += headerSize
	b.written = start
	b.removeConsumedLocked()
	return nil
}

// createSegment creates the file of the segment starting at start and
// writes its header.
func (b *Buffer) createSegment(start pos) (*os.File, error) {
	path := b.segPath(start.seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, statedir.FileMode)
	if err != nil {
		return nil, err
	}
	hdr := segHeader{seq: start.seq, firstIndex: start.index, firstGroups: start.groups, born: unixSeconds(b.now())}.append(nil)
	_, err = f.WriteAt(hdr, 0)
	if err == nil && !b.opts.NoSync {
		if err = datasync(f); err == nil {
			err = syncDir(b.dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// dropOldestLocked deletes the oldest segment (never the last one) for the
// drop_oldest policy.
func (b *Buffer) dropOldestLocked() error {
	s, next := b.segs[0], b.segs[1]
	if err := os.Remove(b.segPath(s.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("append to disk buffer %s: drop the oldest segment: %w", b.dir, err)
	}
	// The drain may hold the file open between two Reads (stuck delivering
	// a batch read from it while the sink is down): a deleted file keeps
	// its blocks while a descriptor holds it, so on a full disk this drop
	// would free nothing and the next one would go too. Close it unless a
	// Read is under way, which moves to the next segment by itself (it
	// sees dropGen change).
	if b.readMu.TryLock() {
		if b.rf != nil && b.rseq == s.seq {
			b.rf.Close()
			b.rf, b.rok = nil, false
		}
		b.readMu.Unlock()
	}
	b.segs = slices.Delete(b.segs, 0, 1)
	b.used -= s.size
	if b.commit.seq <= s.seq {
		// Read and not committed: in the drain's hands until it commits
		// them or gives them back.
		end := next.start
		if b.read.index < end.index {
			end = b.read
		}
		if b.commit.index < end.index {
			b.held = append(b.held, span{b.commit, end})
		}
	}
	var n, g uint64
	if b.read.index < next.start.index {
		n = next.start.index - b.read.index
		g = sub(next.start.groups, b.read.groups)
		b.dropped += n
		b.droppedGroups += g
	}
	if b.read.seq <= s.seq {
		b.read = next.start
		b.dropGen++
	}
	if b.commit.seq <= s.seq {
		b.commit = next.start
		b.pruneMarksLocked()
	}
	// Debug only: a full buffer drops on every append; the caller reports
	// Stats.Dropped at its own pace (the engine: once a minute).
	b.log.Debug().Uint64("records", n).Uint64("groups", g).Str(logx.File, b.segPath(s.seq)).
		Int64("max_size", b.opts.MaxSize).Msg("disk buffer full: dropped the oldest segment (when_full = drop_oldest)")
	return nil
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// removeConsumedLocked takes the fully committed segments out of the list
// and deletes their files. It never removes the last segment.
func (b *Buffer) removeConsumedLocked() {
	for _, s := range b.takeConsumedLocked() {
		if err := os.Remove(b.segPath(s.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn().Err(err).Str(logx.File, b.segPath(s.seq)).Msg("disk buffer: deleting a delivered segment failed")
		}
		b.used -= s.size
	}
	wake(&b.spaceCh)
}

// takeConsumedLocked removes from the list the segments whose records are
// all before the commit position.
func (b *Buffer) takeConsumedLocked() []*segment {
	n := 0
	for n < len(b.segs)-1 && (b.segs[n].seq < b.commit.seq || b.segs[n+1].start.index <= b.commit.index) {
		n++
	}
	if n == 0 {
		return nil
	}
	gone := slices.Clone(b.segs[:n])
	b.segs = slices.Delete(b.segs, 0, n)
	return gone
}

// segIndexLocked returns the list index of segment seq, or -1.
func (b *Buffer) segIndexLocked(seq uint64) int {
	i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].seq >= seq })
	if i < len(b.segs) && b.segs[i].seq == seq {
		return i
	}
	return -1
}

// skipToLocked moves the read position to the start of next, counting the
// records in between as lost (there are none when the reader simply
// finished the previous segment).
func (b *Buffer) skipToLocked(next *segment, why string) {
	if next.start.index > b.read.index {
		n, g := next.start.index-b.read.index, sub(next.start.groups, b.read.groups)
		b.lost += n
		b.lostGroups += g
		b.log.Error().Uint64("records", n).Uint64("groups", g).Str(logx.File, b.segPath(b.read.seq)).
			Msg("disk buffer: records lost, reading on from the next segment: " + why)
	}
	b.read = next.start
}

// Rewind moves the read position back to the last commit, so that the
// records read since and not committed are read again, for a reader that
// gave up on its batches (the sink failed, the task was blocked, a drain
// stopped) and carries on with the same Buffer, as a restart would. Without
// it, the drain resumed after a blocked task read on past the batch it had
// not delivered, and the next commit covered it: those events were lost.
func (b *Buffer) Rewind() error {
	b.readMu.Lock()
	defer b.readMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.enterLocked(); err != nil {
		return err
	}
	defer b.ops.Done()
	if b.rf != nil {
		b.rf.Close()
		b.rf, b.rok = nil, false
	}
	// A segment deleted before the commit position (all of it delivered)
	// is skipped by Read without counting a loss; drop_oldest moves the
	// commit position along with what it drops.
	b.read = b.commit
	b.readAny = false
	b.dropHeldLocked()
	return nil
}

// deliveredHeldLocked takes the held records up to p out of b.held: the
// reader delivered them.
func (b *Buffer) deliveredHeldLocked(p pos) {
	kept := b.held[:0]
	for _, h := range b.held {
		if h.to.index <= p.index {
			continue
		}
		if h.from.index < p.index {
			h.from = p
		}
		kept = append(kept, h)
	}
	b.held = kept
}

// dropHeldLocked counts the held records as dropped: the reader gave them
// back undelivered, and their segment is gone.
func (b *Buffer) dropHeldLocked() {
	var n, g uint64
	for _, h := range b.held {
		n += h.to.index - h.from.index
		g += sub(h.to.groups, h.from.groups)
	}
	b.held = b.held[:0]
	if n == 0 {
		return
	}
	b.dropped += n
	b.droppedGroups += g
	b.log.Debug().Uint64("records", n).Uint64("groups", g).
		Msg("disk buffer: records read but not delivered were in segments drop_oldest deleted; counted as dropped")
}

// Read waits until at least one record is unread (or ctx ends, or Close),
// then returns up to max records in order, at most Options.ReadBytes of
// them (but always at least one). Only one Read runs at a time. Records are
// read again after a restart unless their cursor was committed.
//
// A corrupt record met while reading (a disk or OS fault: Open has already
// repaired what a crash can do) is skipped with the rest of its segment,
// logged and counted in Stats.Lost.
func (b *Buffer) Read(ctx context.Context, maxRecords int) (Batch, error) {
	if maxRecords < 1 {
		return Batch{}, fmt.Errorf("read from disk buffer %s: max must be at least 1, got %d", b.dir, maxRecords)
	}
	b.readMu.Lock()
	defer b.readMu.Unlock()
	b.mu.Lock()
	if err := b.enterLocked(); err != nil {
		b.mu.Unlock()
		return Batch{}, err
	}
	defer b.ops.Done()
	for {
		for b.read.index >= b.durable.index || b.closed {
			if b.closed {
				b.mu.Unlock()
				return Batch{}, ErrClosed
			}
			if b.rf != nil {
				// Caught up: let go of the segment file while waiting. The
				// segment may be deleted meanwhile (all of it delivered:
				// startOverLocked), and a deleted file keeps its blocks
				// for as long as a descriptor holds it, which on a full
				// disk is the space an Append waits for: wake it.
				b.rf.Close()
				b.rf, b.rok = nil, false
				wake(&b.spaceCh)
			}
			ch := b.dataCh
			b.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return Batch{}, ctx.Err()
			}
			b.mu.Lock()
		}
		i := b.segIndexLocked(b.read.seq)
		if i < 0 {
			// Deleted under the read position once all of it was read.
			j := sort.Search(len(b.segs), func(j int) bool { return b.segs[j].seq > b.read.seq })
			if j == len(b.segs) {
				b.mu.Unlock()
				return Batch{}, fmt.Errorf("read from disk buffer %s: internal error: no segment after the read position", b.dir)
			}
			b.skipToLocked(b.segs[j], "a segment is missing")
			continue
		}
		seg := b.segs[i]
		sealed := seg.seq < b.durable.seq
		limit := seg.size
		if !sealed {
			limit = b.durable.off
		}
		if b.read.off >= limit {
			if !sealed || i+1 >= len(b.segs) {
				b.mu.Unlock()
				return Batch{}, fmt.Errorf("read from disk buffer %s: internal error: no data at the read position", b.dir)
			}
			b.skipToLocked(b.segs[i+1], fmt.Sprintf("segment ends at byte %d", limit))
			continue
		}
		start, gen := b.read, b.dropGen
		b.mu.Unlock()

		batch, end, err := b.readRange(start, limit, maxRecords)

		b.mu.Lock()
		if gen != b.dropGen {
			continue // a drop went past these records; they count as dropped
		}
		if len(batch.Msgs) > 0 {
			b.read = end
			batch.Cursor = Cursor{end}
			batch.Gap = b.readAny && start.index != b.readEnd.index
			b.readEnd, b.readAny = end, true
			b.mu.Unlock()
			return batch, nil // an error after them is met by the next Read
		}
		var c *corruption
		if !errors.As(err, &c) {
			b.mu.Unlock()
			if err == nil {
				err = errors.New("internal error: no record read")
			}
			if errors.Is(err, fs.ErrNotExist) {
				// A listed segment is deleted only under b.mu, once read.
				return Batch{}, fmt.Errorf("read from disk buffer %s: its files were deleted while the task ran (the folder removed?); restart the task, which creates the folder again (events stored and not delivered are gone): %w", b.dir, err)
			}
			return Batch{}, fmt.Errorf("read from disk buffer %s: %s: %w", b.dir, filepath.Base(b.segPath(seg.seq)), err)
		}
		why := fmt.Sprintf("corrupt record in %s at %v", filepath.Base(b.segPath(seg.seq)), c)
		if sealed && i+1 < len(b.segs) {
			b.read.off = limit
			b.skipToLocked(b.segs[i+1], why)
			continue
		}
		// In the segment being written to: skip to the end of what was
		// written so far; appends go on after it.
		n, g := b.durable.index-b.read.index, sub(b.durable.groups, b.read.groups)
		b.lost += n
		b.lostGroups += g
		b.log.Error().Uint64("records", n).Uint64("groups", g).Str(logx.File, b.segPath(seg.seq)).
			Msg("disk buffer: records lost: " + why)
		b.read = b.durable
	}
}

// chunkSize is the most one allocation of a batch's record memory holds
// (larger records get their own).
const chunkSize = 256 << 10

// readRange reads up to max records of one segment from start, not past
// limit. It runs without b.mu; only the reader touches the reader state.
func (b *Buffer) readRange(start pos, limit int64, maxRecords int) (Batch, pos, error) {
	if b.rf == nil || b.rseq != start.seq {
		if b.rf != nil {
			b.rf.Close()
			b.rf = nil
		}
		f, err := os.Open(b.segPath(start.seq))
		if err != nil {
			return Batch{}, start, err
		}
		b.rf, b.rseq, b.rok = f, start.seq, false
	}
	if !b.rok || b.sc.off != start.off {
		b.sr = segReader{f: b.rf, off: start.off}
		if b.sc.br == nil {
			b.sc.br = newBufReader(&b.sr)
		} else {
			b.sc.br.Reset(&b.sr)
		}
		b.sc.off = start.off
		b.rok = true
	}
	b.sr.limit, b.sc.limit = limit, limit

	var (
		batch Batch
		chunk []byte
		bytes int64
		p     = start
	)
	for len(batch.Msgs) < maxRecords && (len(batch.Msgs) == 0 || bytes < b.opts.ReadBytes) {
		n, err := b.sc.head()
		if err == io.EOF {
			break
		}
		if err == nil && cap(chunk)-len(chunk) < n {
			// Room for the records still wanted if they are the size of
			// this one, within the data there is and the batch caps.
			left := int64(maxRecords - len(batch.Msgs))
			want := min(int64(chunkSize), limit-b.sc.off, b.opts.ReadBytes-bytes, left*int64(n))
			chunk = make([]byte, 0, max(int64(n), want))
		}
		var body []byte
		if err == nil {
			body = chunk[len(chunk) : len(chunk)+n : len(chunk)+n]
			err = b.sc.body(body)
		}
		var m message.Message
		var tag Tag
		if err == nil {
			if _, derr := b.dec.decodeRecord(body, &m, &tag); derr != nil {
				err = &corruption{p.off, "undecodable record: " + derr.Error()}
			}
		}
		if err != nil {
			b.rok = false
			return batch, p, err
		}
		chunk = chunk[:len(chunk)+n]
		if batch.Msgs == nil {
			batch.Msgs = make([]message.Message, 0, min(maxRecords, 256))
			batch.Tags = make([]Tag, 0, min(maxRecords, 256))
		}
		batch.Msgs = append(batch.Msgs, m)
		batch.Tags = append(batch.Tags, tag)
		bytes += int64(n)
		p.off = b.sc.off
		p.index++
		if tag.Last {
			p.groups++
		}
	}
	return batch, p, nil
}

// Commit records that every record up to c (a Batch's Cursor) was
// delivered: after a restart, Read resumes after it. It writes the
// position to the cursor file (and fsyncs it unless NoSync) and deletes the
// segments that are now fully delivered, which frees space for a blocked
// Append. Committing an older cursor than the last one is a no-op.
func (b *Buffer) Commit(c Cursor) error {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	b.mu.Lock()
	if err := b.enterLocked(); err != nil {
		b.mu.Unlock()
		return err
	}
	defer b.ops.Done()
	b.deliveredHeldLocked(c.p)
	if c.p.index <= b.commit.index {
		b.mu.Unlock()
		return nil
	}
	if c.p.index > b.read.index {
		b.mu.Unlock()
		return fmt.Errorf("commit to disk buffer %s: the cursor is past the records read so far (a cursor from another buffer?)", b.dir)
	}
	b.commit = c.p
	b.pruneMarksLocked()
	gone := b.takeConsumedLocked()
	var freeing int64
	for _, s := range gone {
		freeing += s.size
	}
	// Until their files are deleted, the delivered segments still count in
	// used (max_size bounds the files), and an Append that needs their
	// space waits for it instead of dropping unread records under
	// drop_oldest (reserveLocked).
	b.freeing += freeing
	if len(gone) == 0 && b.commit.index == b.written.index {
		// Everything is delivered but no segment went: a blocked Append
		// can free the last segment itself by starting a new one.
		wake(&b.spaceCh)
	}
	b.mu.Unlock()

	err := b.cursor.write(c.p, !b.opts.NoSync)
	// A full disk can refuse the cursor (a file system that allocates on
	// every write, or a cursor file from before it was preallocated):
	// delete the delivered segments first, which frees space, then try
	// again. Deleting them before the cursor is durable is safe: after a
	// crash Open reads on from the oldest segment left, and everything
	// before it was delivered.
	retry := err != nil && isNoSpace(err) && len(gone) > 0
	if err != nil && !retry {
		err = fmt.Errorf("commit to disk buffer %s: write the cursor: %w (records since the last commit will be read again after a restart)", b.dir, err)
	}
	for _, s := range gone {
		if rerr := os.Remove(b.segPath(s.seq)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("commit to disk buffer %s: delete a delivered segment: %w", b.dir, rerr)
		}
	}
	// The reader keeps the file it last read open until its next Read, and
	// a deleted file keeps its blocks while a descriptor holds it: on a
	// full disk the space this Commit frees was not free yet, and an
	// Append waiting for it dropped an unread segment (drop_oldest)
	// instead. Close it unless a Read is under way (which moves on to the
	// next segment, closing it, by itself).
	if len(gone) > 0 && b.readMu.TryLock() {
		if b.rf != nil && b.rseq <= gone[len(gone)-1].seq {
			b.rf.Close()
			b.rf, b.rok = nil, false
		}
		b.readMu.Unlock()
	}
	if retry {
		if err = b.cursor.write(c.p, !b.opts.NoSync); err != nil {
			err = fmt.Errorf("commit to disk buffer %s: write the cursor: %w (records since the last commit will be read again after a restart)", b.dir, err)
		}
	}
	if len(gone) > 0 {
		b.mu.Lock()
		b.used -= freeing
		b.freeing -= freeing
		wake(&b.spaceCh)
		b.mu.Unlock()
	}
	return err
}

// Close waits for the calls in progress (a waiting Read or Append returns
// ErrClosed), syncs the last segment and closes the files. Unread records
// stay on disk for the next Open.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.dropHeldLocked()
	wake(&b.dataCh)
	wake(&b.spaceCh)
	b.mu.Unlock()
	b.ops.Wait()

	var errs []error
	if b.wf != nil {
		if b.failed == nil {
			errs = append(errs, datasync(b.wf))
		}
		errs = append(errs, b.wf.Close())
	}
	if b.rf != nil {
		b.rf.Close()
	}
	if b.cursor != nil {
		errs = append(errs, b.cursor.f.Close())
	}
	if b.lock != nil {
		unlockFile(b.lock)
		b.lock.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close disk buffer %s: %w", b.dir, err)
	}
	return nil
}
