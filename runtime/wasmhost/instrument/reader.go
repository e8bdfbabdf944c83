package instrument

import (
	"errors"
	"fmt"
	"math"
)

// reader decodes the primitive encodings of the WebAssembly binary format.
// Every method fails softly: it records the first error and returns zero,
// so callers check err once after a run of reads.
type reader struct {
	b   []byte
	pos int
	err error
}

var errEOF = errors.New("unexpected end of data")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b)
}

func (r *reader) done() bool { return r.pos >= len(r.b) || r.err != nil }

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail(errEOF)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(errEOF)
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() uint32 {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > math.MaxUint32 {
				r.fail(fmt.Errorf("integer too large at byte %d", r.pos))
				return 0
			}
			return uint32(v)
		}
	}
	r.fail(fmt.Errorf("integer representation too long at byte %d", r.pos))
	return 0
}

// sleb skips a signed LEB128 of at most maxBytes bytes.
func (r *reader) sleb(maxBytes int) int64 {
	var v int64
	var shift uint
	for i := 0; i < maxBytes; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	r.fail(fmt.Errorf("integer representation too long at byte %d", r.pos))
	return 0
}

func (r *reader) name() string {
	n := r.u32()
	return string(r.bytes(int(n)))
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
