package buffer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/statedir"
)

// Recovery is what Open found on disk and repaired. A crash leaves at most
// a torn tail, which Open cuts; the other fields describe rarer damage.
type Recovery struct {
	// Segments and Bytes describe the segment files kept.
	Segments int
	Bytes    int64
	// Records were not committed by the last run and will be read (again).
	Records uint64
	// Removed counts fully delivered segments that were still on disk (a
	// crash between a Commit and the deletion) and were deleted now.
	Removed int
	// TruncatedBytes were cut from the end of the last segment: a partial
	// record, a corrupt one, or the records of an Append that never
	// completed (TruncatedRecords counts those that were whole).
	TruncatedBytes   int64
	TruncatedRecords uint64
	// Notes describe, in plain words, each repair made. Empty after a clean
	// shutdown.
	Notes []string
}

// Open opens the buffer in opts.Dir, creating it if needed, and recovers
// from a crash: it deletes delivered segments still present, checks the
// records of the last segment and cuts a torn or corrupt tail (see
// Recovery). Damage is repaired and reported, never fatal; Open fails only
// for bad options, I/O errors and a directory in use (ErrLocked).
func Open(opts Options) (*Buffer, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open disk buffer %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(o.Dir, statedir.DirMode); err != nil {
		return nil, fmt.Errorf("open disk buffer: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(o.Dir, "lock"), os.O_RDWR|os.O_CREATE, statedir.FileMode)
	if err != nil {
		return nil, fmt.Errorf("open disk buffer: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open disk buffer %s: %w (each buffer needs its own path)", o.Dir, err)
	}
	b := &Buffer{
		dir:     o.Dir,
		opts:    o,
		log:     o.Logger,
		lock:    lock,
		dataCh:  make(chan struct{}),
		spaceCh: make(chan struct{}),
	}
	if err := b.recover(); err != nil {
		if b.wf != nil {
			b.wf.Close()
		}
		if b.cursor != nil {
			b.cursor.f.Close()
		}
		unlockFile(lock)
		lock.Close()
		return nil, fmt.Errorf("open disk buffer %s: %w", o.Dir, err)
	}
	r := &b.recovery
	ev := b.log.Info()
	if len(r.Notes) > 0 {
		ev = b.log.Warn().Strs("repairs", r.Notes)
	}
	ev.Str(logx.File, b.dir).Uint64("records", r.Records).Int64("bytes", r.Bytes).Int("segments", r.Segments).
		Int64("truncated_bytes", r.TruncatedBytes).Msg("disk buffer opened")
	return b, nil
}

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

func (b *Buffer) note(format string, args ...any) {
	b.recovery.Notes = append(b.recovery.Notes, fmt.Sprintf(format, args...))
}

func (b *Buffer) recover() error {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)

	cur, cp, found, damaged, err := openCursor(filepath.Join(b.dir, cursorName))
	if err != nil {
		return err
	}
	b.cursor = cur
	if damaged {
		b.note("the cursor file is damaged: reading again from the oldest segment (records may repeat)")
	}

	// Segment headers. A bad header on the last segment is a crash right
	// after it was created; anywhere else it is damage, and the segment's
	// records are lost (the reader counts them when it passes the gap).
	var segs []*segment
	var damagedSeqs []uint64 // removed for a damaged header
	for i, seq := range seqs {
		path := b.segPath(seq)
		size, h, herr := readSegHeader(path)
		if herr == nil && h.seq != seq {
			herr = &corruption{0, fmt.Sprintf("the header names segment %d", h.seq)}
		}
		if herr != nil {
			var c *corruption
			if !errors.As(herr, &c) {
				return herr
			}
			if i == len(seqs)-1 && size > headerSize {
				// No later segment leaves a gap for the reader to count:
				// count its whole Appends here (after the cursor when it
				// points into it; those before were delivered).
				from := int64(headerSize)
				if found && cp.seq == seq && cp.off <= size {
					from = cp.off
				}
				n, g, err := countRecords(path, from, size)
				if err != nil {
					return err
				}
				b.lost += n
				b.lostGroups += g
			}
			if err := os.Remove(path); err != nil {
				return err
			}
			what := "damaged header"
			if i == len(seqs)-1 && size < headerSize {
				what = "incomplete header (a crash while it was being created)"
			}
			b.note("removed %s: %s: %v", filepath.Base(path), what, herr)
			damagedSeqs = append(damagedSeqs, seq)
			continue
		}
		segs = append(segs, &segment{seq: seq, start: pos{seq, headerSize, h.firstIndex, h.firstGroups}, size: size, born: h.born})
	}

	// Segments before the cursor's were delivered; a crash came before
	// Commit deleted them.
	if found {
		for len(segs) > 0 && segs[0].seq < cp.seq {
			if err := os.Remove(b.segPath(segs[0].seq)); err != nil {
				return err
			}
			b.recovery.Removed++
			segs = segs[1:]
		}
	}

	if len(segs) == 0 {
		start := pos{seq: 1, off: headerSize}
		if len(seqs) > 0 {
			start.seq = seqs[len(seqs)-1] + 1
		}
		if found {
			// After the cursor's segment, never under its number: the
			// cursor on disk names an offset of the old file, which in a
			// new file of that number would fall inside a record once it
			// grew past it, and the next Open would cut from there.
			start = pos{max(start.seq, cp.seq+1), headerSize, cp.index, cp.groups}
		}
		b.written, b.durable, b.read, b.commit = start, start, start, start
		f, err := b.createSegment(start)
		if isNoSpace(err) {
			// The disk is full (another program filled it, or a crash
			// came between the deletion of the delivered last segment and
			// the creation of the next, startOverLocked): open as that
			// state, with no write handle, so that Append waits for space
			// and creates the segment, as it does while running. Failing
			// here stopped the task for good where a full disk while
			// running only makes the source wait. The placeholder stands
			// for the deleted segment before start and holds no bytes.
			b.log.Warn().Err(err).Str(logx.File, b.dir).Msg("disk buffer: the disk is full, no segment could be created yet; appends wait for space")
			b.segs = []*segment{{seq: start.seq - 1, start: start}}
			return b.preallocCursor()
		}
		if err != nil {
			return err
		}
		b.wf = f
		b.segs = []*segment{{seq: start.seq, start: start, size: headerSize, born: unixSeconds(b.now())}}
		b.used = headerSize
		b.recovery.Segments, b.recovery.Bytes = 1, headerSize
		return b.preallocCursor()
	}
	b.segs = segs

	// The tail: check every record after the cursor (or from the start)
	// and cut from the first bad one, or from the start of an Append whose
	// end marker never made it to disk.
	tail := segs[len(segs)-1]
	wf, err := os.OpenFile(b.segPath(tail.seq), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b.wf = wf
	from := tail.start
	if found && cp.seq == tail.seq && cp.off <= tail.size {
		from = cp
	}
	good, cut, reason, err := scanTail(wf, from, tail.size)
	if err != nil {
		return fmt.Errorf("check %s: %w", filepath.Base(b.segPath(tail.seq)), err)
	}
	if good.off < tail.size {
		if err := wf.Truncate(good.off); err != nil {
			return err
		}
		if err := datasync(wf); err != nil {
			return err
		}
		b.recovery.TruncatedBytes = tail.size - good.off
		b.recovery.TruncatedRecords = cut
		b.note("cut %d bytes (%d whole records) from the end of %s: %s", tail.size-good.off, cut, filepath.Base(b.segPath(tail.seq)), reason)
		tail.size = good.off
	}
	b.written, b.durable = good, good

	b.read = segs[0].start
	if found {
		switch {
		case cp.seq < segs[0].seq:
			if cp.index < segs[0].start.index {
				b.note("%d records between the cursor and the oldest segment are gone (dropped by policy or removed as damaged)", segs[0].start.index-cp.index)
				// The reader counts the gap a damaged segment leaves
				// between two others when it passes it; one before the
				// oldest segment left is never passed: count it here.
				// (A gap drop_oldest left was counted when it dropped.)
				if slices.ContainsFunc(damagedSeqs, func(d uint64) bool { return d >= cp.seq && d < segs[0].seq }) {
					b.lost += segs[0].start.index - cp.index
					b.lostGroups += sub(segs[0].start.groups, cp.groups)
				}
			}
		case cp.off <= segs[0].size:
			b.read = cp
		default:
			b.note("the cursor points past the end of %s: reading on from its end", filepath.Base(b.segPath(cp.seq)))
			b.read = pos{cp.seq, segs[0].size, cp.index, cp.groups}
		}
	}
	if b.read.index > b.written.index {
		b.note("the cursor is past the last record: data written before a machine crash was lost")
		b.read = b.written
	}
	b.commit = b.read
	for _, s := range segs {
		b.used += s.size
		if s.size > headerSize {
			b.marks = append(b.marks, mark{s.start.index, b.segmentBorn(s)})
		}
	}
	b.pruneMarksLocked()
	b.recovery.Segments = len(segs)
	b.recovery.Bytes = b.used
	b.recovery.Records = b.written.index - b.read.index
	return b.preallocCursor()
}

// preallocCursor writes both slots of a new (or short) cursor file with
// the start position, so that every later Commit overwrites bytes that
// exist: on a full disk a commit, which is what frees space, must not need
// any. Best effort: a disk already full at Open is reported, not fatal.
func (b *Buffer) preallocCursor() error {
	fi, err := b.cursor.f.Stat()
	if err != nil || fi.Size() >= 2*cursorSlot {
		return err
	}
	for range 2 {
		if err := b.cursor.write(b.commit, !b.opts.NoSync); err != nil {
			if isNoSpace(err) {
				b.log.Warn().Err(err).Str(logx.File, b.dir).Msg("disk buffer: the disk is full, the cursor file could not be preallocated")
				return nil
			}
			return fmt.Errorf("write the cursor: %w", err)
		}
	}
	return nil
}

// segmentBorn dates the first record of s: the header's time, or for a
// segment written by a build without it, the file's modification time
// (its last append: the backlog then looks younger than it is).
func (b *Buffer) segmentBorn(s *segment) int64 {
	if s.born != 0 {
		return int64(s.born) * int64(time.Second)
	}
	if fi, err := os.Stat(b.segPath(s.seq)); err == nil {
		return fi.ModTime().UnixNano()
	}
	return b.now().UnixNano()
}

// readSegHeader returns the size of a segment file and its parsed header.
// A short or invalid header is a *corruption.
func readSegHeader(path string) (int64, segHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, segHeader{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, segHeader{}, err
	}
	var raw [headerSize]byte
	n, err := f.ReadAt(raw[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fi.Size(), segHeader{}, err
	}
	h, err := parseHeader(raw[:n])
	var verr *versionError
	if errors.As(err, &verr) {
		return fi.Size(), segHeader{}, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err != nil {
		return fi.Size(), segHeader{}, &corruption{0, err.Error()}
	}
	return fi.Size(), h, nil
}

// scanTail checks the records of the last segment from `from` up to size.
// good is the end of the last complete Append (the last record carrying the
// batch-end flag); cut counts the whole records after it; reason says why
// the data after good cannot be kept.
func scanTail(f *os.File, from pos, size int64) (good pos, cut uint64, reason string, err error) {
	sr := segReader{f: f, off: from.off, limit: size}
	sc := scanner{br: newBufReader(&sr), off: from.off, limit: size}
	good, p := from, from
	var (
		dec     decodeState
		scratch []byte
		m       message.Message
		tag     Tag
	)
	for {
		n, err := sc.head()
		if err == io.EOF {
			break
		}
		if err == nil {
			if cap(scratch) < n {
				scratch = make([]byte, n)
			}
			err = sc.body(scratch[:n])
		}
		var flags byte
		if err == nil {
			dec.hdrs = dec.hdrs[:0]
			var derr error
			if flags, derr = dec.decodeRecord(scratch[:n], &m, &tag); derr != nil {
				err = &corruption{p.off, "undecodable record: " + derr.Error()}
			}
		}
		var c *corruption
		if errors.As(err, &c) {
			return good, cut, c.Error(), nil
		}
		if err != nil {
			return good, cut, "", err
		}
		p.off = sc.off
		p.index++
		if tag.Last {
			p.groups++
		}
		cut++
		if flags&flagBatchEnd != 0 {
			good, cut = p, 0
		}
	}
	if cut > 0 {
		reason = "the last Append did not complete (its final record is missing)"
	}
	return good, cut, reason, nil
}

// countRecords counts the records of the complete Appends in the segment
// file at path from offset from up to size, and those of them with
// Tag.Last, without trusting its header.
func countRecords(path string, from, size int64) (n, groups uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	good, _, _, err := scanTail(f, pos{off: from}, size)
	if err != nil {
		return 0, 0, fmt.Errorf("check %s: %w", filepath.Base(path), err)
	}
	return good.index, good.groups, nil
}
