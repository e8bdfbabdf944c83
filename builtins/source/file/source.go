package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// checkpointName is the file stem of the source's checkpoint in the task's
// state folder.
const checkpointName = "source.file"

// errClosed is returned by Read once Close was called.
var errClosed = errors.New("file source: closed")

// options is the resolved configuration.
type options struct {
	pattern    string // absolute path or glob
	glob       bool
	tail       bool
	format     lineformat.Format
	utf8       lineformat.UTF8Policy
	startAtEnd bool
	limit      int
	built      int // the task's event limit, which the engine holds every event to
	maxEvents  int
	maxBytes   int
	poll       time.Duration
	rotateWait time.Duration
	maxOpen    int // files kept open at once (max_open_files, within the rlimit)

	multiline        *regexp.Regexp
	multilineTimeout time.Duration

	stateDir, taskDir, task string
	logger                  zerolog.Logger
}

// Source is the file source. Read runs on one goroutine; Ack callbacks and
// Close may run on others.
type Source struct {
	o      options
	log    zerolog.Logger
	badLog zerolog.Logger // sampled: a file full of bad lines must not flood the log

	closing   chan struct{}
	closeOnce sync.Once

	// readMu is held by Read for its whole call and by Open and Close, so
	// the reading state below has one owner at a time.
	readMu   sync.Mutex
	opened   bool
	closed   bool
	eof      bool
	streams  []*stream
	byPath   map[string]*stream
	rr       int // round-robin start over streams
	lastPoll time.Time
	// slabHint and countHint size the next batch after the last one.
	slabHint, countHint int
	open                int                    // segments holding an open file
	retired             map[fileID]retiredFile // glob: files finished during this run that still exist (not to be read again)

	// mu guards what Ack callbacks and the committer touch: the commit
	// fields of streams and segments, and the structure (stream and segment
	// lists, generations, fingerprints) that snapshots read.
	mu         sync.Mutex
	store      *checkpoint.Store
	dirty      bool
	kick       chan struct{}
	stopCommit chan struct{}
	commitDone chan struct{}
}

// stream is one path: a lane of ordered batches whose files follow each
// other at that path.
type stream struct {
	path    string
	wrap    lineformat.Wrapper
	segs    []*segment // oldest first (under mu)
	active  *segment   // the file now at path, nil when missing
	nextGen int32      // (under mu)
	waiting bool       // "waiting for file" was logged

	// Under mu.
	inflight []*inflight // unacked batches, in read order
	epoch    int         // bumped by each rewind; acks of older batches are ignored
	rewind   *inflight   // first failed batch, applied by the next Read
}

// segment is one file read for a stream: one generation.
type segment struct {
	st       *stream
	id       fileID
	gen      int32
	name     string // current name as far as we know (under mu)
	f        *os.File
	rd       *lineReader
	startOff int64
	fp       fingerprint // (under mu)

	rotated   bool      // no longer at the stream's path
	rotatedAt time.Time // when the rotation was noticed
	truncated bool      // its file was truncated: ended, not checkpointed (under mu)
	finishing bool      // rotated and quiet: its unterminated last line may be emitted
	drained   bool      // nothing more will be read from it
	lastData  time.Time
	readErr   bool // the last read failed (logged once)

	// A parked segment's file is closed to stay within max_open_files; its
	// reader keeps its position, and the file is reopened (and checked to
	// be the same file) when there is more to read.
	parked    bool
	lastUse   time.Time // last read, for choosing which file to close
	statSize  int64     // size seen by the last poll while parked
	announced bool      // "reading file" was logged

	line       int64 // number of the line starting at countedOff; 0 when unknown
	countedOff int64
	ml         pendingEvent

	// Under mu.
	committed int64 // start of the first line not handled yet
	emitted   int64 // end of the last line emitted in a batch
	pending   int   // batches not yet acknowledged
}

// pendingEvent is a multiline event still collecting lines.
type pendingEvent struct {
	active bool
	buf    []byte // the joined lines, at most limit bytes
	off    int64  // offset of its first line
	end    int64  // end of its last line
	size   int64  // full joined size
	lines  int64  // lines in it
	last   time.Time
}

// retiredFile is what is remembered of a file a glob finished during this
// run, to tell it from a later file that reuses its inode. It is forgotten
// once the file is gone (pruneRetired), so that a glob over hourly files
// does not keep an entry per hour for as long as the task runs.
type retiredFile struct {
	fp   fingerprint
	size int64  // how much of it was read
	name string // where it was last seen, to check it still exists
}

// inflight is one batch handed out and not yet acknowledged.
type inflight struct {
	seg        *segment
	start, end int64
	epoch      int
	done       bool
	err        error
}

func newSource(o options) *Source {
	s := &Source{
		o:       o,
		log:     o.logger,
		closing: make(chan struct{}),
		byPath:  map[string]*stream{},
		retired: map[fileID]retiredFile{},
		kick:    make(chan struct{}, 1),
	}
	s.badLog = s.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: 10 * time.Second})
	return s
}

var (
	_ component.Source      = (*Source)(nil)
	_ component.LineDecoder = (*Source)(nil)
)

// DecodeLine makes the event a line at byte offset off of the configured
// file becomes, for `sluice test`. Multiline joining is not applied: each
// line is one event.
func (s *Source) DecodeLine(dst, line []byte, _ int, off int64, now time.Time) ([]byte, error) {
	w := lineformat.Wrapper{Format: s.o.format, Source: sourceURI(s.o.pattern), Type: EventType, MaxEvent: s.o.limit, MaxBuilt: s.o.built}
	w.SetTime(now)
	return w.Append(dst, line, message.Position{Stream: s.o.pattern, Offset: off})
}

// Open loads the checkpoint and opens the files. In read mode a missing
// file is an error; in tail mode the source waits for it.
func (s *Source) Open(ctx context.Context) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.opened {
		return nil
	}
	if err := s.openStore(); err != nil {
		return err
	}
	prev := s.loadState()
	if err := s.discover(prev); err != nil {
		s.closeFiles()
		s.streams, s.byPath = nil, map[string]*stream{}
		return err
	}
	s.opened = true
	if s.store != nil {
		s.dirty = true
		if s.o.tail {
			// Make the starting position durable now: with start = "end", a
			// crash before the first acknowledgement must not move it.
			if err := s.save(); err != nil {
				s.closeFiles()
				s.streams, s.byPath, s.opened = nil, map[string]*stream{}, false
				return component.Retryable(fmt.Errorf("file source: %w", err), 0)
			}
		}
		s.stopCommit = make(chan struct{})
		s.commitDone = make(chan struct{})
		go s.committer()
	}
	return nil
}

func (s *Source) openStore() error {
	if s.store != nil {
		return nil
	}
	dir := checkpoint.Dir(s.o.stateDir, s.o.taskDir, s.o.task)
	st, err := checkpoint.Open(dir, checkpointName)
	if err != nil {
		if s.o.tail || errors.Is(err, checkpoint.ErrLocked) {
			return component.TaskPermanent(fmt.Errorf("file source: %w", err))
		}
		s.log.Warn().Err(err).Msg("no checkpoint: an interrupted run will start over")
		return nil
	}
	s.store = st
	return nil
}

// loadState returns the checkpoint of the current mode, or nil.
func (s *Source) loadState() *state {
	if s.store == nil {
		return nil
	}
	var prev *state
	data, err := os.ReadFile(s.store.Path())
	if err == nil {
		prev, err = decodeState(data)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		bad := s.store.Path() + ".bad"
		os.Rename(s.store.Path(), bad)
		s.log.Error().Err(err).Str(logx.File, bad).Msg("checkpoint unreadable, moved aside; starting without it")
		return nil
	}
	mode := s.mode()
	if prev.Mode != mode {
		s.log.Info().Str("checkpoint_mode", prev.Mode).Msg("checkpoint written in the other mode; starting without it")
		return nil
	}
	return prev
}

func (s *Source) mode() string {
	if s.o.tail {
		return "tail"
	}
	return "read"
}

// matches lists the regular files the pattern names now, sorted.
func (s *Source) matches() ([]string, error) {
	if !s.o.glob {
		return []string{s.o.pattern}, nil
	}
	m, err := filepath.Glob(s.o.pattern)
	if err != nil {
		return nil, fmt.Errorf("file source: glob %q: %w", s.o.pattern, err)
	}
	out := m[:0]
	for _, p := range m {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Source) covers(path string) bool {
	if !s.o.glob {
		return path == s.o.pattern
	}
	ok, _ := filepath.Match(s.o.pattern, path)
	return ok
}

// discover builds the streams at Open: those of the checkpoint first, then
// every matching file.
func (s *Source) discover(prev *state) error {
	firstRun := prev == nil
	if prev != nil {
		for _, ss := range prev.Streams {
			if !s.covers(ss.Path) {
				s.log.Info().Str(logx.File, ss.Path).Msg("checkpointed file no longer matches path; forgetting it")
				continue
			}
			st := s.addStream(ss.Path, ss.NextGen)
			for _, fs := range ss.Files {
				s.restoreSegment(st, fs)
			}
		}
	}
	paths, err := s.matches()
	if err != nil {
		return err
	}
	if !s.o.tail {
		if len(paths) == 0 {
			return component.TaskPermanent(fmt.Errorf("file source: no file matches %q", s.o.pattern))
		}
		for _, p := range paths {
			st := s.byPath[p]
			if st == nil {
				st = s.addStream(p, 0)
			}
			if st.active != nil {
				continue
			}
			st.nextGen = 0 // read mode: positions are always in generation 0
			fi, err := os.Stat(p)
			if err != nil {
				return component.TaskPermanent(fmt.Errorf("file source: %w", err))
			}
			if !fi.Mode().IsRegular() {
				return component.TaskPermanent(fmt.Errorf("file source: %s is not a regular file (use the stdin source for pipes)", p))
			}
			// Opened when its turn comes: a glob may match more files
			// than the process may open.
			st.active = s.newSegment(st, nil, fi, p, 0, 0)
		}
		// Streams of the checkpoint whose file is gone have nothing to read.
		for _, st := range s.streams {
			if st.active == nil {
				for _, sg := range st.segs {
					sg.drained = true
				}
			}
		}
		return nil
	}
	if !s.o.glob {
		if fi, err := os.Stat(s.o.pattern); err == nil && !fi.Mode().IsRegular() {
			return component.TaskPermanent(fmt.Errorf("file source: %s is not a regular file (use the stdin source for pipes)", s.o.pattern))
		}
		if s.byPath[s.o.pattern] == nil {
			s.addStream(s.o.pattern, 0)
		}
	}
	for _, p := range paths {
		if s.byPath[p] == nil && !s.tracked(p) {
			s.addStream(p, 0)
		}
	}
	for _, st := range s.streams {
		s.checkStream(st, time.Now(), firstRun && s.o.startAtEnd)
	}
	return nil
}

func (s *Source) addStream(path string, nextGen int32) *stream {
	st := &stream{path: path, nextGen: nextGen}
	st.wrap = lineformat.Wrapper{Format: s.o.format, InvalidUTF8: s.o.utf8, Source: sourceURI(path), Type: EventType, MaxEvent: s.o.limit, MaxBuilt: s.o.built}
	s.mu.Lock()
	s.streams = append(s.streams, st)
	s.byPath[path] = st
	s.mu.Unlock()
	return st
}

// restoreSegment finds the checkpointed file fs of st (at the stream's path,
// at its last known name, or renamed next to the path) and resumes it.
func (s *Source) restoreSegment(st *stream, fs fileState) {
	cands := []string{st.path}
	if fs.Name != "" && fs.Name != st.path && s.o.tail {
		cands = append(cands, fs.Name)
	}
	dir, base := filepath.Split(st.path)
	if ents, err := os.ReadDir(dir); err == nil && s.o.tail {
		for _, e := range ents {
			n := filepath.Join(dir, e.Name())
			if strings.HasPrefix(e.Name(), base) && n != st.path && n != fs.Name {
				cands = append(cands, n)
			}
		}
	}
	for _, c := range cands {
		fi, err := os.Stat(c)
		if err != nil || !fi.Mode().IsRegular() || idOf(fi) != fs.id() {
			continue
		}
		if !s.makeRoom(nil) {
			s.log.Warn().Str(logx.File, c).Msg("no room under max_open_files to resume the checkpointed file; it is read again from its start when it can be opened")
			return
		}
		f, err := os.Open(c)
		if err != nil {
			s.log.Warn().Err(err).Str(logx.File, c).Msg("cannot open checkpointed file")
			continue
		}
		fi, err = f.Stat()
		if err != nil || idOf(fi) != fs.id() {
			f.Close()
			continue
		}
		want := fs.fp()
		if fi.Size() < fs.Offset || fi.Size() < int64(want.n) {
			f.Close()
			if c == st.path {
				s.log.Warn().Str(logx.File, c).Int64(logx.Offset, fs.Offset).Int64("size", fi.Size()).
					Msg("checkpointed file was truncated while stopped; reading it again from its start")
				return
			}
			continue
		}
		got, err := fingerprintOf(f, int64(want.n))
		if err != nil || got != want {
			f.Close()
			continue // the inode was reused by another file
		}
		sg := s.newSegment(st, f, fi, c, fs.Gen, fs.Offset)
		sg.fp = want
		if c != st.path {
			sg.rotated, sg.rotatedAt = true, time.Now()
		} else {
			st.active = sg
		}
		s.log.Info().Str(logx.File, c).Int32(logx.Partition, fs.Gen).Int64(logx.Offset, fs.Offset).Msg("resuming file")
		return
	}
	s.log.Warn().Str(logx.File, st.path).Str("last_name", fs.Name).Int32(logx.Partition, fs.Gen).Int64(logx.Offset, fs.Offset).
		Msg("checkpointed file not found (rotated away or deleted while stopped); lines it got after the checkpoint are lost")
}

// openSegment opens the file at path as the next generation of st,
// starting at off (or at the end of its last complete line with atEnd).
func (s *Source) openSegment(st *stream, path string, off int64, atEnd bool) (*segment, error) {
	if !s.makeRoom(nil) {
		return nil, errNoRoom
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if atEnd {
		off = lastLineEnd(f, fi.Size(), int64(s.o.limit))
	}
	fp, err := fingerprintOf(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	s.mu.Lock()
	gen := st.nextGen
	s.mu.Unlock()
	sg := s.newSegment(st, f, fi, path, gen, off)
	s.mu.Lock()
	sg.fp = fp
	s.dirty = true
	s.mu.Unlock()
	st.active = sg
	ev := s.log.Info().Str(logx.File, path).Int32(logx.Partition, gen)
	if off > 0 {
		ev = ev.Int64(logx.Offset, off)
	}
	ev.Msg("reading file")
	return sg, nil
}

func (s *Source) newSegment(st *stream, f *os.File, fi os.FileInfo, name string, gen int32, off int64) *segment {
	sg := &segment{
		st: st, id: idOf(fi), gen: gen, name: name, f: f,
		rd:       newLineReader(f, off, s.o.limit),
		startOff: off, committed: off, emitted: off,
		lastData: time.Now(), countedOff: off, lastUse: time.Now(),
		parked: f == nil, statSize: fi.Size(), announced: f != nil,
	}
	if f != nil {
		s.open++
	}
	if off == 0 {
		sg.line = 1
	}
	s.mu.Lock()
	st.segs = append(st.segs, sg)
	slices.SortStableFunc(st.segs, func(a, b *segment) int { return int(a.gen - b.gen) })
	if gen >= st.nextGen {
		st.nextGen = gen + 1
	}
	s.mu.Unlock()
	return sg
}

// lastLineEnd returns the offset just past the last '\n' of f: where
// start = "end" begins, so that a line being written is read whole. It
// looks back 64 KiB at a time, up to limit bytes (the longest line read):
// 0 when the file holds no '\n' (its only line is being written), size when
// the line being written is already longer than limit (an oversize line).
// It looked at the last 64 KiB only, and returned size when they held no
// '\n': such a line was read from the middle (review).
func lastLineEnd(f *os.File, size, limit int64) int64 {
	buf := make([]byte, min(size, 64<<10))
	for end := size; end > 0 && size-end <= limit; {
		n := min(end, int64(len(buf)))
		got, _ := f.ReadAt(buf[:n], end-n)
		for i := got - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return end - n + int64(i) + 1
			}
		}
		end -= n
		if end == 0 {
			return 0
		}
	}
	return size
}

// checkStream notices rotation, deletion, truncation and the (re)appearance
// of the file at st.path. atEnd starts a newly found file at its end.
func (s *Source) checkStream(st *stream, now time.Time, atEnd bool) {
	fi, err := os.Stat(st.path)
	exists := err == nil && fi.Mode().IsRegular()
	if act := st.active; act != nil {
		switch {
		case !exists || idOf(fi) != act.id:
			act.rotated, act.rotatedAt = true, now
			st.active = nil
			what := "file rotated"
			if !exists {
				what = "file removed or renamed"
			}
			s.log.Info().Str(logx.File, st.path).Int32(logx.Partition, act.gen).Msg(what + "; reading it to its end")
		case act.f == nil:
			// Parked: the path's size tells whether it grew or shrank.
			act.statSize = fi.Size()
			if fi.Size() < act.rd.readEnd() && s.unpark(act) {
				s.truncate(st, act, "file truncated")
			}
		default:
			if cur, err := act.f.Stat(); err == nil && cur.Size() < act.rd.readEnd() {
				s.truncate(st, act, "file truncated")
			}
		}
	}
	if st.active == nil && exists {
		id := idOf(fi)
		for _, sg := range st.segs {
			if sg.id == id && !sg.truncated {
				// A rotated file came back under its old name (moved away
				// and back, or a stat of the path failed for a moment): it
				// is the live file again. Left rotated, it was finished
				// once quiet for rotate_wait and then, no longer followed,
				// read again from its start as the next generation.
				sg.rotated, sg.finishing, sg.drained = false, false, false
				st.active = sg
				s.log.Info().Str(logx.File, st.path).Int32(logx.Partition, sg.gen).Msg("rotated file is back at the path; following it again")
				return
			}
		}
		if _, err := s.openSegment(st, st.path, 0, atEnd); err != nil {
			if errors.Is(err, errNoRoom) {
				return // every open file is busy: retried at the next poll
			}
			if !st.waiting {
				s.log.Warn().Err(err).Str(logx.File, st.path).Msg("cannot open file; retrying at each poll")
				st.waiting = true
			}
			return
		}
		st.waiting = false
		return
	}
	if !exists && st.active == nil && !st.waiting {
		s.log.Info().Str(logx.File, st.path).Msg("waiting for file to appear")
		st.waiting = true
	}
}

// truncate ends a file that shrank (copytruncate), or that another file
// replaced by getting its inode while it was closed, and reads the file at
// the path from its start as the next generation.
func (s *Source) truncate(st *stream, old *segment, what string) {
	s.log.Info().Str(logx.File, st.path).Int32(logx.Partition, old.gen).Int64(logx.Offset, old.rd.readEnd()).
		Msg(what + "; reading it from its start")
	f := old.f
	fi, err := f.Stat()
	if err != nil {
		return
	}
	s.mu.Lock()
	old.truncated = true
	old.f = nil
	gen := st.nextGen
	s.dirty = true
	s.mu.Unlock()
	s.open-- // the file moves to the new segment, which counts it
	old.rd = nil
	// A multiline event still collecting lines was read before the
	// truncation: it is complete (what followed is gone) and is emitted,
	// before the new generation's events, by the next Read.
	old.drained = !old.ml.active
	sg := s.newSegment(st, f, fi, st.path, gen, 0)
	fp, _ := fingerprintOf(f, fi.Size())
	s.mu.Lock()
	sg.fp = fp
	s.mu.Unlock()
	st.active = sg
}

// Read returns the next batch. In read mode it returns io.EOF once every
// file was read to its end; in tail mode it waits for data.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed {
		return component.Batch{}, errClosed
	}
	if !s.opened {
		return component.Batch{}, errors.New("file source: Read before Open")
	}
	if s.eof {
		// A batch nacked after the end was reached (a blocked task being
		// resumed) is read again rather than lost.
		if !s.rewindPending() {
			return component.Batch{}, io.EOF
		}
		s.eof = false
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	polled := false
	for {
		if err := ctx.Err(); err != nil {
			return component.Batch{}, err
		}
		select {
		case <-s.closing:
			return component.Batch{}, errClosed
		default:
		}
		s.applyRewinds()
		now := time.Now()
		if s.o.tail && !polled && now.Sub(s.lastPoll) >= s.o.poll {
			// Polled every poll_interval even while files have data:
			// polling only when none had, one busy file kept rotation,
			// truncation and new files from being noticed in the others.
			s.poll(now)
			polled = true
		}
		b, ok, err := s.tryRead(now)
		if err != nil {
			return component.Batch{}, err
		}
		if ok {
			return b, nil
		}
		if !s.o.tail {
			s.retire()
			if s.allDrained() {
				s.eof = true
				return component.Batch{}, io.EOF
			}
			continue
		}
		if !polled {
			s.poll(now)
			polled = true
			continue
		}
		polled = false
		if timer == nil {
			timer = time.NewTimer(s.o.poll)
		} else {
			timer.Reset(s.o.poll)
		}
		select {
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		case <-s.closing:
			return component.Batch{}, errClosed
		case <-timer.C:
		}
	}
}

func (s *Source) allDrained() bool {
	for _, st := range s.streams {
		for _, sg := range st.segs {
			if !sg.drained {
				return false
			}
		}
	}
	return true
}

// poll runs when no file has data, and at least every poll_interval: it
// checks rotation and truncation, looks for new files, finishes quiet
// rotated files and retires finished ones.
func (s *Source) poll(now time.Time) {
	s.lastPoll = now
	if s.o.glob {
		paths, err := s.matches()
		if err != nil {
			s.badLog.Warn().Err(err).Msg("glob failed")
		}
		for _, p := range paths {
			if s.byPath[p] != nil || s.tracked(p) {
				continue
			}
			s.addStream(p, 0)
		}
	}
	for _, st := range s.streams {
		s.checkStream(st, now, false)
		for _, sg := range st.segs {
			if sg.rotated && !sg.drained && !sg.finishing {
				quiet := now.Sub(sg.lastData)
				if since := now.Sub(sg.rotatedAt); since < quiet {
					quiet = since
				}
				if quiet >= s.o.rotateWait {
					sg.finishing = true
				}
			}
		}
	}
	s.retire()
	if s.o.glob {
		s.forgetGone()
		s.pruneRetired()
	}
}

// tracked reports whether the file at path is already read as part of
// another stream (a rotated name matching the glob) or was finished.
func (s *Source) tracked(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return true
	}
	id := idOf(fi)
	if id == (fileID{}) {
		return false
	}
	if r, ok := s.retired[id]; ok {
		if r.is(path, fi) {
			r.name = path // renamed: spares pruneRetired a search
			s.retired[id] = r
			return true
		}
		// Another file got the finished file's inode (log cleanup deleted
		// it, and the filesystem handed the inode out again): a new file.
		delete(s.retired, id)
	}
	for _, st := range s.streams {
		for _, sg := range st.segs {
			if sg.id == id && !sg.truncated {
				return true
			}
		}
	}
	return false
}

// is reports whether the file at path (whose stat is fi) is still the
// retired file r rather than another that reused its inode: it is no
// smaller, and its first bytes have r's fingerprint. An empty retired file
// is only an empty file: nothing was read from it, so reading a file that
// has content since as a new one repeats nothing. A file whose fingerprint
// is unknown, and a file that cannot be
// opened counts as the retired one (asked again at the next poll).
func (r retiredFile) is(path string, fi os.FileInfo) bool {
	if r.fp.n == 0 {
		return fi.Size() == 0 || r.size > 0
	}
	if fi.Size() < max(r.size, int64(r.fp.n)) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	fp, err := fingerprintOf(f, int64(r.fp.n))
	return err != nil || fp == r.fp
}

// retire closes drained files whose batches were all handled and drops them
// from the checkpoint (in read mode they stay in it, fully read, until the
// run completes).
func (s *Source) retire() {
	for _, st := range s.streams {
		s.mu.Lock()
		if st.rewind != nil {
			s.mu.Unlock()
			continue
		}
		keep := st.segs[:0]
		for _, sg := range st.segs {
			done := sg.drained && sg.pending == 0 && (sg.truncated || sg.committed >= sg.emitted)
			if !done {
				keep = append(keep, sg)
				continue
			}
			// Only a glob asks whether a file was finished (tracked): one
			// path follows its files by segments, and remembering each
			// rotated file would grow by one entry per rotation forever.
			if s.o.tail && s.o.glob && !sg.truncated {
				r := retiredFile{fp: sg.fp, size: sg.rd.readEnd(), name: sg.name}
				if sg.f != nil && r.fp.n < fpMax && int64(r.fp.n) < r.size {
					if fp, err := fingerprintOf(sg.f, r.size); err == nil {
						r.fp = fp // what was read of it
					}
				}
				s.retired[sg.id] = r
			}
			if sg.f != nil {
				sg.f.Close()
				sg.f = nil
				s.open--
			}
			sg.parked = false
			if !s.o.tail && !sg.truncated {
				keep = append(keep, sg) // closed, kept as "read to the end"
				continue
			}
			s.dirty = true
			if sg.rotated {
				s.log.Info().Str(logx.File, st.path).Int32(logx.Partition, sg.gen).Msg("finished rotated file")
			}
		}
		clear(st.segs[len(keep):])
		st.segs = keep
		s.mu.Unlock()
	}
	s.signal()
}

// pruneRetired forgets the finished files that no longer exist. A finished
// file matters only while a poll could meet it under a matching name, and
// an entry is kept whenever that may be: the file is at its last known
// name, or found by its identity (and fingerprint, so not a newcomer that
// got its inode) in that name's folder or a folder the glob covers, under
// any name (it may be renamed back into the glob later). Otherwise it was
// deleted, or moved out of every folder the glob covers. Each entry costs a
// stat per poll, as each matching file does; the folders are listed only
// in a poll that misses an entry at its name, once per such poll.
func (s *Source) pruneRetired() {
	var lost map[fileID]bool
	for id, r := range s.retired {
		fi, err := os.Stat(r.name)
		if err == nil && idOf(fi) == id {
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			continue // cannot tell (permissions, I/O): keep it
		}
		if lost == nil {
			lost = map[fileID]bool{}
		}
		lost[id] = true
	}
	if len(lost) == 0 {
		return
	}
	dirs := map[string]bool{}
	for id := range lost {
		dirs[filepath.Dir(s.retired[id].name)] = true
	}
	if m, err := filepath.Glob(filepath.Dir(s.o.pattern)); err == nil {
		for _, d := range m {
			dirs[d] = true
		}
	}
	for d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the folder is gone, and its files with it
			}
			return // cannot tell what is in it: forget nothing this time
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			p := filepath.Join(d, e.Name())
			fi, err := os.Stat(p) // follows a symbolic link, as the glob does
			if err != nil || !fi.Mode().IsRegular() || !lost[idOf(fi)] {
				continue
			}
			id := idOf(fi)
			if r := s.retired[id]; r.is(p, fi) {
				r.name = p
				s.retired[id] = r
				delete(lost, id)
			}
		}
	}
	for id := range lost {
		delete(s.retired, id)
	}
}

// forgetGone drops streams of a glob whose file is gone and finished.
func (s *Source) forgetGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.streams[:0]
	for _, st := range s.streams {
		if st.active == nil && len(st.segs) == 0 && len(st.inflight) == 0 {
			if _, err := os.Stat(st.path); errors.Is(err, os.ErrNotExist) {
				delete(s.byPath, st.path)
				s.dirty = true
				continue
			}
		}
		keep = append(keep, st)
	}
	clear(s.streams[len(keep):])
	s.streams = keep
}

// tryRead builds a batch from the first file with data, taking streams in
// turn so that a busy file does not starve the others.
//
// Files already open come first; a parked file is reopened only when no
// open one has data, so a glob of more files than max_open_files reads
// file after file instead of reopening one per batch.
func (s *Source) tryRead(now time.Time) (component.Batch, bool, error) {
	n := len(s.streams)
	for _, parked := range [...]bool{false, true} {
		for k := range n {
			i := (s.rr + k) % n
			st := s.streams[i]
			for j, sg := range st.segs {
				if j > 0 && holdsNewer(st.segs[j-1]) {
					break
				}
				if sg.drained {
					continue
				}
				if sg.truncated {
					// Its file went on as the next generation: only its
					// pending multiline event is left, emitted first.
					if parked {
						continue
					}
					sg.drained = true
					if b, ok := s.flushBatch(sg, now); ok {
						s.rr = (i + 1) % n
						return b, true, nil
					}
					continue
				}
				if (sg.f == nil) != parked {
					continue
				}
				if parked && !s.hasMore(sg) {
					// Nothing new, so it stays closed; but the multiline
					// timeout holds for it as for an open file.
					if sg.ml.active && now.Sub(sg.ml.last) >= s.o.multilineTimeout {
						if b, ok := s.flushBatch(sg, now); ok {
							s.rr = (i + 1) % n
							return b, true, nil
						}
					}
					continue
				}
				if parked && !s.unpark(sg) {
					continue
				}
				sg.lastUse = now
				b, ok, err := s.readBatch(sg, now)
				if err != nil {
					return component.Batch{}, false, err
				}
				if ok {
					s.rr = (i + 1) % n
					return b, true, nil
				}
			}
		}
	}
	return component.Batch{}, false, nil
}

// holdsNewer reports whether sg's stream must not read its newer files yet:
// sg was rotated away while collecting a multiline event. Its start line
// was written before anything in the newer files, so the event comes first;
// the rotated file is held open in case its continuation lines still
// arrive, and emits it at multiline.timeout, or once quiet for rotate_wait.
// Without a pending event a rotated file holds nothing back: a line written
// to it after the rename has no order against the new file's lines.
func holdsNewer(sg *segment) bool {
	return sg.rotated && !sg.drained && sg.ml.active
}

// errNoRoom: every open file is in use and max_open_files is reached.
var errNoRoom = errors.New("max_open_files reached")

// hasMore reports whether a parked segment may have something to read: in
// read mode until it is drained; in tail mode when the last poll saw it
// grow, or when it was rotated and must be read to its end.
func (s *Source) hasMore(sg *segment) bool {
	if !s.o.tail || sg.rotated || sg.finishing {
		return true
	}
	return sg.statSize > sg.rd.readEnd()
}

// makeRoom closes the least recently read parkable file until one more may
// be opened. It reports false when none can be closed (every open file is
// rotated or truncated, or is except).
func (s *Source) makeRoom(except *segment) bool {
	for s.open >= s.o.maxOpen {
		var victim *segment
		for _, st := range s.streams {
			for _, sg := range st.segs {
				if sg == except || sg.f == nil || sg.rotated || sg.truncated {
					continue
				}
				if victim == nil || sg.lastUse.Before(victim.lastUse) {
					victim = sg
				}
			}
		}
		if victim == nil {
			return false
		}
		s.park(victim)
	}
	return true
}

// park closes sg's file; its reader keeps its position.
func (s *Source) park(sg *segment) {
	s.mu.Lock()
	f := sg.f
	sg.f = nil
	s.mu.Unlock()
	f.Close()
	sg.rd.f = nil
	sg.parked = true
	s.open--
	s.log.Debug().Str(logx.File, sg.name).Int64(logx.Offset, sg.rd.offset()).Msg("file closed while idle (max_open_files); reopened when it grows")
}

// unpark reopens a parked segment's file, checking it is the same file: at
// its last known name, or, when it was renamed meanwhile (rotated), by its
// identity next to its path. A file that cannot be found is finished; what
// it got after its last read is lost, and logged.
func (s *Source) unpark(sg *segment) bool {
	if !s.makeRoom(sg) {
		return false
	}
	f, name := openSame(sg.name, sg.id)
	if f == nil && sg.id != (fileID{}) {
		f, name = findByID(filepath.Dir(sg.st.path), sg.id)
	}
	if f != nil && !s.sameStart(sg, f) {
		// Its file was deleted while closed and another file got its
		// inode (or it was truncated and written again): not the file it
		// was reading.
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		if s.o.tail && sg == sg.st.active && name == sg.st.path {
			// The file at its path: read from its start as the next
			// generation, as after a truncation.
			s.mu.Lock()
			sg.f = f
			s.mu.Unlock()
			s.open++
			if size >= sg.rd.readEnd() {
				s.log.Warn().Str(logx.File, name).Int64(logx.Offset, sg.rd.offset()).
					Msg("a file closed under max_open_files was replaced by another file that got its inode: lines the old one got after this offset are lost; raise max_open_files")
				s.truncate(sg.st, sg, "file replaced")
			} else {
				s.truncate(sg.st, sg, "file truncated")
			}
			return false
		}
		f.Close()
		f = nil
	}
	if f == nil {
		if sg.rotated || !s.o.tail {
			sg.drained = true
			s.log.Warn().Str(logx.File, sg.name).Int64(logx.Offset, sg.rd.offset()).
				Msg("a file waiting to be (re)opened under max_open_files was moved or deleted and is not found: lines it got after this offset are lost; raise max_open_files")
		}
		return false
	}
	s.mu.Lock()
	sg.f, sg.name = f, name
	s.mu.Unlock()
	sg.rd.f = f
	sg.parked = false
	s.open++
	if !sg.announced {
		sg.announced = true
		if fi, err := f.Stat(); err == nil {
			if fp, err := fingerprintOf(f, fi.Size()); err == nil {
				s.mu.Lock()
				sg.fp = fp
				s.dirty = true
				s.mu.Unlock()
			}
		}
		s.log.Info().Str(logx.File, name).Int32(logx.Partition, sg.gen).Msg("reading file")
	}
	return true
}

// sameStart reports whether the file f, found by sg's identity, starts as
// sg's file did (its fingerprint), when that is known.
func (s *Source) sameStart(sg *segment, f *os.File) bool {
	s.mu.Lock()
	want := sg.fp
	s.mu.Unlock()
	if !sg.announced || want.n == 0 {
		return true
	}
	got, err := fingerprintOf(f, int64(want.n))
	return err != nil || got == want // unreadable: its read fails and is retried
}

// openSame opens the file at name if it is the file id (any file when id
// is unknown on this platform).
func openSame(name string, id fileID) (*os.File, string) {
	f, err := os.Open(name)
	if err != nil {
		return nil, ""
	}
	if fi, err := f.Stat(); err != nil || (id != (fileID{}) && idOf(fi) != id) {
		f.Close()
		return nil, ""
	}
	return f, name
}

// findByID looks in dir for the file id (a rotated file under its new name).
func findByID(dir string, id fileID) (*os.File, string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, ""
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err == nil && idOf(fi) == id {
			return openSame(p, id)
		}
	}
	return nil, ""
}

// batchBuilder accumulates one batch's events in one slab.
type batchBuilder struct {
	now   time.Time
	slab  []byte
	spans []span
	msgs  []message.Message
	end   int64
}

type span struct{ a, b int }

// readBatch reads up to a batch of events from sg. A read error fails a
// read-mode run; in tail mode it is logged and the file retried at each
// poll.
func (s *Source) readBatch(sg *segment, now time.Time) (component.Batch, bool, error) {
	st := sg.st
	final := !s.o.tail || sg.finishing
	st.wrap.SetTime(now)
	bb := s.newBatch(now)
	eof := false
	for len(bb.msgs) < s.o.maxEvents && len(bb.slab) < s.o.maxBytes {
		ln, ok, err := sg.rd.next(final)
		if err != nil {
			if !s.o.tail && len(bb.msgs) == 0 {
				return component.Batch{}, false, fmt.Errorf("file source: read %s: %w", sg.name, err)
			}
			if !sg.readErr {
				s.log.Warn().Err(err).Str(logx.File, sg.name).Msg("read failed; retrying at each poll")
				sg.readErr = true
			}
			break
		}
		sg.readErr = false
		if !ok {
			eof = true
			break
		}
		sg.lastData = now
		if s.o.multiline != nil {
			s.multiline(sg, ln, now, &bb)
			continue
		}
		sg.count(ln.end)
		if isBlank(ln.data) && ln.size == int64(len(ln.data)) {
			continue
		}
		s.emit(sg, &bb, ln.data, ln.off, ln.end, ln.size, 1)
	}
	if eof && sg.ml.active && (final || now.Sub(sg.ml.last) >= s.o.multilineTimeout) {
		s.flushPending(sg, &bb)
	}
	if eof && final {
		sg.drained = true
	}
	b, ok := s.finishBatch(sg, &bb)
	return b, ok, nil
}

// newBatch starts a batch, sized from the previous one so that the slab is
// not grown (and copied) event by event.
func (s *Source) newBatch(now time.Time) batchBuilder {
	return batchBuilder{
		now:   now,
		slab:  make([]byte, 0, s.slabHint),
		spans: make([]span, 0, s.countHint),
		msgs:  make([]message.Message, 0, s.countHint),
	}
}

// flushBatch returns a batch of sg's pending multiline event alone, without
// reading its file (which may be closed, or gone on as the next generation).
func (s *Source) flushBatch(sg *segment, now time.Time) (component.Batch, bool) {
	sg.st.wrap.SetTime(now)
	bb := s.newBatch(now)
	s.flushPending(sg, &bb)
	return s.finishBatch(sg, &bb)
}

// finishBatch hands out the events of bb, read from sg, as a batch; false
// when there are none.
func (s *Source) finishBatch(sg *segment, bb *batchBuilder) (component.Batch, bool) {
	st := sg.st
	if len(bb.msgs) == 0 {
		return component.Batch{}, false
	}
	for i, sp := range bb.spans {
		p := bb.slab[sp.a:sp.b:sp.b]
		bb.msgs[i].Payload, bb.msgs[i].Event = p, p
	}
	s.slabHint = max(len(bb.slab)+len(bb.slab)/8, 4<<10)
	s.countHint = max(len(bb.msgs)+len(bb.msgs)/8, 8)
	s.updateFingerprint(sg)
	fl := &inflight{seg: sg, start: bb.msgs[0].Pos.Offset, end: bb.end}
	s.mu.Lock()
	fl.epoch = st.epoch
	st.inflight = append(st.inflight, fl)
	sg.pending++
	sg.emitted = bb.end
	s.mu.Unlock()
	return component.Batch{
		Messages: bb.msgs,
		Lane:     st.path,
		Ack:      func(err error) { s.ack(fl, err) },
	}, true
}

// count advances the line counter past a line ending at end.
func (sg *segment) count(end int64) {
	if sg.line > 0 {
		sg.line++
	}
	sg.countedOff = end
}

// lineAt returns the number of the line that started `back` counted lines
// ago, counting the file's lines once if the number is not known yet
// (after resuming mid-file).
func (sg *segment) lineAt(back int64) int64 {
	if sg.line == 0 && sg.f != nil {
		n, err := countNewlines(sg.f, 0, sg.countedOff)
		if err != nil {
			return 0
		}
		sg.line = n + 1
	}
	if sg.line == 0 {
		return 0
	}
	return sg.line - back
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// emit adds the event made of data (a line, or joined lines) to the batch.
// size is its full length (more than len(data) when it was cut); back is how
// many counted lines ago it started.
func (s *Source) emit(sg *segment, bb *batchBuilder, data []byte, off, end, size int64, back int64) {
	st := sg.st
	pos := message.Position{Stream: st.path, Partition: sg.gen, Offset: off}
	a := len(bb.slab)
	var err error
	if size > int64(len(data)) {
		err = fmt.Errorf("%w: %d bytes, the limit is %d (raise max_event_size); the record holds its first %d bytes",
			lineformat.ErrTooLarge, size, s.o.limit, len(data))
	} else {
		bb.slab, err = st.wrap.Append(bb.slab, data, pos)
	}
	m := message.Message{Time: bb.now, Pos: pos}
	if err != nil {
		raw := data
		if n := len(raw); n > 0 && raw[n-1] == '\r' {
			raw = raw[:n-1]
		}
		bb.slab = append(bb.slab[:a], raw...)
		line := sg.lineAt(back)
		m.Err = fmt.Errorf("%s line %d: %w", st.path, line, err)
		if ev := s.badLog.Warn(); ev != nil {
			ev.Err(err).Str(logx.File, st.path).Int64(logx.Line, line).Int32(logx.Partition, sg.gen).
				Int64(logx.Offset, off).Str(logx.Stage, "decode").Msg("line cannot be decoded; sending it to the dead-letter path")
		}
	}
	bb.spans = append(bb.spans, span{a, len(bb.slab)})
	bb.msgs = append(bb.msgs, m)
	bb.end = end
}

// multiline feeds one line to sg's pending event.
func (s *Source) multiline(sg *segment, ln rawLine, now time.Time, bb *batchBuilder) {
	data, size := ln.data, ln.size
	if n := len(data); n > 0 && data[n-1] == '\r' && size == int64(n) {
		data, size = data[:n-1], size-1
	}
	p := &sg.ml
	blank := isBlank(data) && size == int64(len(data))
	if !p.active || s.o.multiline.Match(data) {
		if p.active {
			s.flushPending(sg, bb)
		}
		sg.count(ln.end)
		if blank {
			return
		}
		*p = pendingEvent{active: true, buf: append(p.buf[:0], data...), off: ln.off, end: ln.end, size: size, lines: 1, last: now}
		return
	}
	sg.count(ln.end)
	if room := s.o.limit - len(p.buf); room > 0 {
		p.buf = append(p.buf, '\n')
		p.buf = append(p.buf, data[:min(len(data), room-1)]...)
	}
	p.size += 1 + size
	p.end = ln.end
	p.lines++
	p.last = now
}

// flushPending emits sg's pending multiline event.
func (s *Source) flushPending(sg *segment, bb *batchBuilder) {
	p := &sg.ml
	if !p.active {
		return
	}
	s.emit(sg, bb, p.buf, p.off, p.end, p.size, p.lines)
	p.active = false
}

// updateFingerprint extends the fingerprint of a file still shorter than
// fpMax once more of it was read.
func (s *Source) updateFingerprint(sg *segment) {
	s.mu.Lock()
	n := sg.fp.n
	s.mu.Unlock()
	if n >= fpMax || sg.f == nil || sg.rd.readEnd() <= int64(n) {
		return
	}
	fp, err := fingerprintOf(sg.f, sg.rd.readEnd())
	if err != nil {
		return
	}
	s.mu.Lock()
	sg.fp = fp
	s.mu.Unlock()
}

// ack records the fate of a batch and commits the handled prefix of its
// lane.
func (s *Source) ack(fl *inflight, err error) {
	s.mu.Lock()
	if fl.done {
		s.mu.Unlock()
		return // the engine calls Ack once; tolerate a second call
	}
	fl.done, fl.err = true, err
	st := fl.seg.st
	for len(st.inflight) > 0 && st.inflight[0].done {
		h := st.inflight[0]
		st.inflight[0] = nil
		st.inflight = st.inflight[1:]
		h.seg.pending--
		if h.epoch != st.epoch {
			continue // read before a rewind: its lines are read again
		}
		if h.err != nil {
			if st.rewind == nil {
				st.rewind = h
			}
			continue
		}
		if st.rewind == nil && h.end > h.seg.committed {
			h.seg.committed = h.end
			s.dirty = true
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Debug().Err(err).Str(logx.File, st.path).Int64(logx.Offset, fl.start).Msg("batch not handled; it will be read again")
	}
	s.signal()
}

// applyRewinds repositions lanes whose batch failed at the start of that
// batch, so the lines are read again if the task goes on.
func (s *Source) applyRewinds() {
	for _, st := range s.streams {
		s.mu.Lock()
		rw := st.rewind
		if rw == nil {
			s.mu.Unlock()
			continue
		}
		st.rewind = nil
		st.epoch++
		// Batches are read across the lane's files in any order (a rotated
		// file may get lines after the new file was read), so a file
		// before the failed batch's may have batches after it too: those
		// were not committed (nothing after a failed batch is), and are
		// read again from its committed position.
		earlier := map[*segment]int64{}
		committed := map[*segment]int64{}
		before := true
		for _, sg := range st.segs {
			committed[sg] = sg.committed
			if sg == rw.seg {
				before = false
			}
			if before && sg.emitted > sg.committed {
				earlier[sg] = sg.committed
			}
		}
		s.mu.Unlock()
		after := false
		for _, sg := range st.segs {
			off, early := earlier[sg]
			if sg != rw.seg && !after && !early {
				continue
			}
			if !early {
				// A newer file after the failed batch's is read again from
				// its committed position too: a batch of it read before the
				// failed one (a rotated file's late line failed after the
				// new file's first batch was delivered) is committed, and
				// was delivered again, its checkpoint moved back, when this
				// took the position the run started from (review).
				off = committed[sg]
			}
			if sg == rw.seg {
				off = rw.start
				after = true
			}
			if sg.truncated || sg.rd == nil || (sg.f == nil && !sg.parked) {
				continue
			}
			sg.rd.reset(off)
			sg.ml = pendingEvent{}
			sg.drained, sg.finishing = false, false
			sg.countedOff = off
			if off == 0 {
				sg.line = 1
			} else {
				sg.line = 0
			}
			s.mu.Lock()
			sg.emitted = min(sg.emitted, off)
			if sg.committed > off {
				sg.committed = off // cannot happen: a failed batch is never committed
			}
			s.mu.Unlock()
		}
	}
}

// signal wakes the committer.
func (s *Source) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// committer saves the checkpoint whenever positions move, coalescing the
// acknowledgements that arrive while a save is in progress.
func (s *Source) committer() {
	defer close(s.commitDone)
	var retry <-chan time.Time
	for {
		select {
		case <-s.stopCommit:
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if err := s.save(); err != nil {
			s.badLog.Error().Err(err).Msg("cannot save the checkpoint; retrying (a crash now would repeat lines)")
			retry = time.After(time.Second)
		}
	}
}

// save writes the checkpoint if positions changed since the last save.
func (s *Source) save() error {
	s.mu.Lock()
	if !s.dirty || s.store == nil {
		s.mu.Unlock()
		return nil
	}
	snap := s.snapshotLocked()
	s.dirty = false
	s.mu.Unlock()
	if err := s.store.Save(snap); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Source) snapshotLocked() *state {
	snap := &state{Mode: s.mode(), Streams: make([]streamState, 0, len(s.streams))}
	for _, st := range s.streams {
		ss := streamState{Path: st.path, NextGen: st.nextGen, Files: []fileState{}}
		for _, sg := range st.segs {
			if sg.truncated {
				continue
			}
			ss.Files = append(ss.Files, fileState{
				Dev: sg.id.dev, Ino: sg.id.ino, Gen: sg.gen, Offset: sg.committed,
				Fingerprint: fpString(sg.fp), FingerprintLen: sg.fp.n, Name: sg.name,
			})
		}
		snap.Streams = append(snap.Streams, ss)
	}
	return snap
}

// rewindPending reports whether a failed batch waits to be read again.
func (s *Source) rewindPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		if st.rewind != nil {
			return true
		}
	}
	return false
}

// complete reports whether a read-mode run read and handled everything.
func (s *Source) completeLocked() bool {
	if s.o.tail || !s.eof {
		return false
	}
	for _, st := range s.streams {
		if len(st.inflight) > 0 || st.rewind != nil {
			return false
		}
		for _, sg := range st.segs {
			if !sg.drained || sg.pending > 0 || sg.committed < sg.emitted {
				return false
			}
		}
	}
	return true
}

// Close stops reading, commits the acknowledged positions and releases the
// files. Batches not acknowledged by then are read again by the next run.
// After a read-mode run that read and handled every line, the checkpoint is
// removed so that the next run reads the files again.
func (s *Source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.commitDone != nil {
		close(s.stopCommit)
		<-s.commitDone
	}
	var err error
	if s.store != nil && s.opened {
		s.mu.Lock()
		complete := s.completeLocked()
		s.mu.Unlock()
		if complete {
			err = s.store.Remove()
		} else {
			err = s.save()
		}
	}
	s.closeFiles()
	if s.store != nil {
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	return nil
}

func (s *Source) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		for _, sg := range st.segs {
			if sg.f != nil {
				sg.f.Close()
				sg.f = nil
			}
		}
	}
	s.open = 0
}
