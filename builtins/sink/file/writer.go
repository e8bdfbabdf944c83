package file

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// settings are the keys that shape how a file is written. Sinks sharing a
// file must agree on them.
type settings struct {
	maxSize  int64
	maxFiles int
	fsync    bool
	mode     os.FileMode
	mkdir    bool
}

// tableKey finds the process's table of open files in component.Shared.
type tableKey struct{}

// table holds the process's open files, so that tasks naming the same file
// (a shared dead-letter file) write through one writer instead of
// interleaving and rotating under each other.
type table struct {
	mu    sync.Mutex
	files map[string]*writer
}

func (t *table) acquire(path string, set settings, log zerolog.Logger) (*writer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.files[path]; w != nil {
		if w.set != set {
			return nil, component.TaskPermanent(fmt.Errorf("file sink: %s is already written by another file sink of this process with different settings (max_size, max_files, fsync, file_mode, create_dirs must match)", path))
		}
		w.refs++
		return w, nil
	}
	w := &writer{path: path, set: set, log: log, refs: 1}
	if err := w.open(); err != nil {
		return nil, err
	}
	t.files[path] = w
	return w, nil
}

func (t *table) release(w *writer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.refs--
	if w.refs > 0 {
		return nil
	}
	delete(t.files, w.path)
	return w.close()
}

// writer appends to one file. Writes are serialized by mu; with fsync, the
// writes that wait for the disk at the same time share one fsync (group
// commit), so concurrent workers do not pay one fsync each.
type writer struct {
	path string
	set  settings
	log  zerolog.Logger
	refs int // under table.mu

	mu      sync.Mutex
	f       *os.File
	size    int64
	buf     []byte
	written uint64 // writes completed so far

	syncMu sync.Mutex
	synced uint64 // writes known to be on disk (under syncMu)
}

func (w *writer) open() error {
	if w.set.mkdir {
		if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
			return component.TaskPermanent(fmt.Errorf("file sink: create folder for %s: %w", w.path, err))
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, w.set.mode)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("file sink: %w", err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return component.TaskPermanent(fmt.Errorf("file sink: %w", err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return component.TaskPermanent(fmt.Errorf("file sink: %s is not a regular file (use the stdout sink for pipes)", w.path))
	}
	size, err := cutTornTail(f, w.path, fi.Size())
	if err != nil {
		f.Close()
		return component.Retryable(fmt.Errorf("file sink: %w", err), 0)
	}
	if size != fi.Size() {
		w.log.Warn().Str(logx.File, w.path).Int64("bytes", fi.Size()-size).
			Msg("file sink: removed an unterminated last line (a write cut short by a crash); its records were not acknowledged and are written again")
	}
	w.f, w.size = f, size
	return nil
}

// cutTornTail truncates the file back to just after its last newline when
// it does not end in one: a crash (kill -9) can cut a write short, and the
// next record appended would otherwise run on from the torn line. It
// returns the new size.
func cutTornTail(f *os.File, path string, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	r, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		chunk := buf[:end-start]
		if _, err := r.ReadAt(chunk, start); err != nil {
			return 0, fmt.Errorf("read the end of %s: %w", path, err)
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			end = start + int64(i) + 1
			break
		}
		end = start
		if end == 0 {
			break
		}
		if size-end > 64<<20 {
			return size, nil // no newline in 64MiB: not a file of lines; leave it be
		}
	}
	if end == size {
		return size, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, fmt.Errorf("remove the unterminated last line of %s: %w", path, err)
	}
	return end, nil
}

// errNewline rejects a record that would break the line framing.
var errNewline = errors.New("payload is not JSON and holds a newline, which would break the one-record-per-line framing")

// write appends the records of msgs.
func (w *writer) write(msgs []message.Message) error {
	var rejected map[int]error
	w.mu.Lock()
	if w.f == nil {
		// A rotation failed half way: append to whatever is at the path.
		if err := w.open(); err != nil {
			w.mu.Unlock()
			return component.Retryable(err, 0)
		}
	}
	// Records before pending are written; a failure fails the others alone
	// (a rotation part way through a batch writes what precedes it first),
	// so that a retry does not write those again.
	pending := 0
	failed := func(err error, from int) error {
		if from == 0 {
			return err
		}
		errs := make(map[int]error, len(msgs)-from+len(rejected))
		for j, e := range rejected {
			errs[j] = e
		}
		for j := from; j < len(msgs); j++ {
			if errs[j] == nil {
				errs[j] = err
			}
		}
		return &component.RecordErrors{Errs: errs}
	}
	buf := w.buf[:0]
	for i := range msgs {
		p := msgs[i].Payload
		start := len(buf)
		switch {
		case bytes.IndexByte(p, '\n') < 0 && jsonscan.IsCompact(p):
			// Compact JSON, or text on one line that is not JSON: either
			// way it is written as it is, so it need not be validated.
			buf = append(buf, p...)
		case jsonscan.Valid(p):
			if jsonscan.IsCompact(p) {
				buf = append(buf, p...)
			} else {
				buf = jsonscan.AppendCompact(buf, p)
			}
		case bytes.IndexByte(p, '\n') >= 0:
			if rejected == nil {
				rejected = map[int]error{}
			}
			rejected[i] = component.EventPermanent(fmt.Errorf("file sink %s: record %d: %w", w.path, i, errNewline))
			continue
		default:
			buf = append(buf, p...)
		}
		buf = append(buf, '\n')
		if w.set.maxSize > 0 && w.size+int64(len(buf)) > w.set.maxSize && w.size+int64(start) > 0 {
			// This record does not fit: write what precedes it, rotate,
			// and start the new file with it.
			if err := w.flush(buf[:start]); err != nil {
				w.buf = buf[:0]
				w.mu.Unlock()
				return failed(err, pending)
			}
			if synced, err := w.rotate(); err != nil {
				w.mu.Unlock()
				if synced {
					return failed(err, i)
				}
				return failed(err, pending) // not known to be on disk
			}
			pending = i
			buf = buf[:copy(buf, buf[start:])]
		}
	}
	err := w.flush(buf)
	if cap(buf) <= 8<<20 {
		w.buf = buf[:0] // keep the buffer unless one huge batch grew it
	} else {
		w.buf = nil
	}
	seq := w.written
	w.mu.Unlock()
	if err != nil {
		return failed(err, pending)
	}
	if w.set.fsync {
		if err := w.syncUpTo(seq); err != nil {
			return failed(err, pending)
		}
	}
	if rejected != nil {
		return &component.RecordErrors{Errs: rejected}
	}
	return nil
}

// flush writes b to the file (under mu). A failed write is cut off again so
// a retry does not leave a torn line behind.
func (w *writer) flush(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := w.f.Write(b)
	if err != nil {
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				w.log.Error().Err(terr).Msg("cannot remove a partial write; the file may hold a torn line")
			}
		}
		return component.Retryable(fmt.Errorf("file sink: write %s: %w", w.path, err), 0)
	}
	w.size += int64(n)
	w.written++
	return nil
}

// syncUpTo returns once write number seq is on disk, fsyncing unless
// another caller's fsync already covered it.
func (w *writer) syncUpTo(seq uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= seq {
		return nil
	}
	w.mu.Lock()
	f, upto := w.f, w.written
	w.mu.Unlock()
	if f == nil {
		return component.Retryable(fmt.Errorf("file sink: %s is not open (a rotation failed)", w.path), 0)
	}
	if err := f.Sync(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			// A rotation closed the file after fsyncing it.
			w.synced = max(w.synced, seq)
			return nil
		}
		return component.Retryable(fmt.Errorf("file sink: fsync %s: %w", w.path, err), 0)
	}
	w.synced = upto
	return nil
}

// rotate shifts <path>.N names up by one, renames the file to <path>.1 and
// starts a new one (under mu). synced reports whether what was written to
// the old file is where the settings want it (on disk with fsync), even
// when a later step failed.
func (w *writer) rotate() (synced bool, err error) {
	fail := func(err error) (bool, error) {
		return synced, component.Retryable(fmt.Errorf("file sink: rotate %s: %w", w.path, err), 0)
	}
	if w.set.fsync {
		if err := w.f.Sync(); err != nil {
			return fail(err)
		}
	}
	synced = true
	if err := w.f.Close(); err != nil {
		return fail(err)
	}
	w.f = nil
	name := func(i int) string { return w.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(w.set.maxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	for i := w.set.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	if err := os.Rename(w.path, name(1)); err != nil {
		return fail(err)
	}
	if err := w.open(); err != nil {
		return fail(err)
	}
	if w.set.fsync {
		if d, err := os.Open(filepath.Dir(w.path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	w.log.Debug().Str("rotated_to", name(1)).Msg("rotated file")
	return true, nil
}

func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("file sink: close %s: %w", w.path, err)
	}
	return nil
}
