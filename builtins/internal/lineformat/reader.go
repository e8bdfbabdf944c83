package lineformat

import (
	"bufio"
	"errors"
)

// LineReader reads the lines of R in memory bounded by Limit: a longer
// line is cut to its first Limit bytes and the rest is skipped, though
// still counted, so that a runaway line, or input without newlines, cannot
// exhaust memory.
type LineReader struct {
	R     *bufio.Reader
	Limit int
	long  []byte // a line longer than R's buffer, assembled
}

// Next returns the next line without its '\n', valid until the next call;
// size, the line's full length (more than len(line) when it was cut); and
// n, the bytes it took from R, its '\n' included. err is R's: io.EOF comes
// with a last line that has no '\n' (or with nothing).
func (lr *LineReader) Next() (line []byte, size, n int64, err error) {
	line, err = lr.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = appendUpTo(lr.long[:0], line, lr.Limit)
		n = int64(len(line))
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.R.ReadSlice('\n')
			n += int64(len(line))
			lr.long = appendUpTo(lr.long, line, lr.Limit)
		}
		line = lr.long
	} else {
		n = int64(len(line))
	}
	size = n
	if err == nil {
		size-- // the '\n'
	}
	if int64(len(line)) > size {
		line = line[:size]
	}
	return line, size, n, err
}

// appendUpTo appends to dst as much of b as keeps it within limit bytes,
// growing it by doubling, and to the limit once past half of it (append
// grows large slices by a quarter, which would allocate several times the
// limit on the way).
func appendUpTo(dst, b []byte, limit int) []byte {
	b = b[:max(0, min(len(b), limit-len(dst)))]
	if need := len(dst) + len(b); need > cap(dst) {
		size := max(need, 2*cap(dst))
		if size > limit/2 {
			size = max(limit, need)
		}
		grown := make([]byte, len(dst), size)
		copy(grown, dst)
		dst = grown
	}
	return append(dst, b...)
}
