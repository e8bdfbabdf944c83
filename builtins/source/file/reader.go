package file

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
)

// readBufSize is the read buffer of one file. A line longer than the buffer
// grows it, up to the event limit.
const readBufSize = 64 << 10

// bufPool recycles the read buffers of files that are idle at their end, so
// that following many quiet files costs no memory.
var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// rawLine is one line of a file, without its '\n'.
type rawLine struct {
	data []byte // the line, or its first limit bytes when cut; valid until the next call
	off  int64  // file offset of its first byte
	end  int64  // file offset just past its '\n' (or past its last byte at the end of a file)
	size int64  // its full length; > len(data) when the line was longer than the limit
}

// lineReader reads the lines of one file from an offset, with positioned
// reads (so the file's own offset never matters and rewinding is a matter of
// resetting), in a buffer bounded by the line limit: a longer line is cut to
// its first limit bytes and the rest is skipped, however long it is.
type lineReader struct {
	f     *os.File
	limit int // longest line kept, without its '\n'

	buf     []byte
	pooled  bool  // buf came from bufPool
	base    int64 // file offset of buf[0]
	r, w    int   // unread bytes are buf[r:w]
	scanned int   // buf[r:scanned] holds no '\n'

	long     bool   // inside a line longer than limit
	longOff  int64  // its offset
	longSize int64  // its length so far
	longHead []byte // its first limit bytes
}

func newLineReader(f *os.File, off int64, limit int) *lineReader {
	return &lineReader{f: f, limit: limit, base: off}
}

// offset returns the file offset of the next unread byte: the start of the
// next line, or of the partial line being read.
func (lr *lineReader) offset() int64 {
	if lr.long {
		return lr.longOff
	}
	return lr.base + int64(lr.r)
}

// readEnd returns the file offset up to which the file has been read.
func (lr *lineReader) readEnd() int64 { return lr.base + int64(lr.w) }

// reset drops buffered data and continues reading at off.
func (lr *lineReader) reset(off int64) {
	lr.base, lr.r, lr.w, lr.scanned = off, 0, 0, 0
	lr.long, lr.longSize = false, 0
	lr.release()
}

// release gives the buffer back when it holds nothing.
func (lr *lineReader) release() {
	if lr.r != lr.w || lr.buf == nil {
		return
	}
	lr.base += int64(lr.w)
	lr.r, lr.w, lr.scanned = 0, 0, 0
	if lr.pooled {
		b := lr.buf[:readBufSize]
		bufPool.Put(&b)
	}
	lr.buf, lr.pooled = nil, false
}

// next returns the next complete line. ok is false when the file holds no
// complete line beyond what was returned; with final set, an unterminated
// last line then counts as complete (the file is known to be finished).
func (lr *lineReader) next(final bool) (ln rawLine, ok bool, err error) {
	for {
		if lr.buf != nil {
			if i := bytes.IndexByte(lr.buf[lr.scanned:lr.w], '\n'); i >= 0 {
				nl := lr.scanned + i
				ln = lr.take(nl, nl+1)
				return ln, true, nil
			}
			lr.scanned = lr.w
			lr.cutLong()
		}
		n, rerr := lr.fill()
		if n > 0 {
			continue
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return rawLine{}, false, rerr
		}
		if final && (lr.long || lr.r < lr.w) {
			return lr.take(lr.w, lr.w), true, nil
		}
		lr.release()
		return rawLine{}, false, nil
	}
}

// take returns the line ending at buf[end] (exclusive) and consumes it up to
// buf[next].
func (lr *lineReader) take(end, next int) rawLine {
	var ln rawLine
	if lr.long {
		lr.longSize += int64(end - lr.r)
		ln = rawLine{data: lr.longHead, off: lr.longOff, size: lr.longSize}
		lr.long = false
	} else {
		ln = rawLine{data: lr.buf[lr.r:end], off: lr.base + int64(lr.r), size: int64(end - lr.r)}
		if len(ln.data) > lr.limit+1 {
			ln.data = ln.data[:lr.limit] // over the limit whatever its ending: keep its head only
		}
	}
	lr.r, lr.scanned = next, next
	ln.end = lr.base + int64(next)
	return ln
}

// cutLong switches to skipping once the partial line outgrows the limit.
// The '\r' of a CRLF ending may follow a line of exactly limit bytes, so one
// more byte is allowed before the line is known to be over.
func (lr *lineReader) cutLong() {
	if lr.long {
		lr.longSize += int64(lr.w - lr.r)
		lr.r, lr.scanned = lr.w, lr.w
		return
	}
	if lr.w-lr.r > lr.limit+1 {
		lr.long = true
		lr.longOff = lr.base + int64(lr.r)
		lr.longHead = append(lr.longHead[:0], lr.buf[lr.r:lr.r+lr.limit]...)
		lr.longSize = int64(lr.w - lr.r)
		lr.r, lr.scanned = lr.w, lr.w
	}
}

// fill reads more of the file into the buffer, making room first.
func (lr *lineReader) fill() (int, error) {
	if lr.buf == nil {
		lr.buf = *bufPool.Get().(*[]byte)
		lr.pooled = true
	}
	if lr.r == lr.w {
		lr.base += int64(lr.w)
		lr.r, lr.w, lr.scanned = 0, 0, 0
	}
	if lr.w == len(lr.buf) {
		if lr.r > 0 {
			n := copy(lr.buf, lr.buf[lr.r:lr.w])
			lr.base += int64(lr.r)
			lr.scanned -= lr.r
			lr.r, lr.w = 0, n
		} else {
			// One partial line fills the buffer: grow it, up to what the
			// limit needs to tell an over-size line (limit, '\r', one more).
			size := min(2*len(lr.buf), lr.limit+2)
			if size <= len(lr.buf) {
				size = len(lr.buf) * 2 // cannot happen: cutLong empties a full buffer first
			}
			nb := make([]byte, size)
			copy(nb, lr.buf[:lr.w])
			if lr.pooled {
				b := lr.buf[:readBufSize]
				bufPool.Put(&b)
			}
			lr.buf, lr.pooled = nb, false
		}
	}
	n, err := lr.f.ReadAt(lr.buf[lr.w:], lr.base+int64(lr.w))
	lr.w += n
	return n, err
}
