package binlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxPayload is the largest payload of one protocol packet; a longer
// message is split into packets of this size followed by a shorter one.
const maxPayload = 1<<24 - 1

// maxMessage bounds a message joined from packets: MySQL's own ceiling
// (max_allowed_packet is at most 1 GiB). A server sending more is broken
// or hostile; reading on would grow the buffer without end, and past 2^31
// bytes overflow an int on 32-bit platforms. A variable for tests.
var maxMessage = 1 << 30

// ErrMalformed is wrapped by every error about bytes that do not follow
// the protocol.
var ErrMalformed = errors.New("malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// packetConn frames the protocol's packets over a connection: a 3-byte
// little-endian length, a sequence number, the payload.
type packetConn struct {
	nc   net.Conn
	br   *bufio.Reader
	seq  uint8
	buf  []byte // the last payload read; reused by the next read
	wbuf []byte
	// timeout bounds each read and write when positive.
	timeout time.Duration
	// readDeadline is the read deadline set last: moving it costs a timer
	// update, so a read moves it only once a quarter of timeout has passed.
	readDeadline time.Time
}

func newPacketConn(nc net.Conn) *packetConn {
	return &packetConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// read returns the next message, joining split packets. The slice is valid
// until the next read.
func (c *packetConn) read() ([]byte, error) {
	if c.timeout > 0 {
		if now := time.Now(); c.readDeadline.Sub(now) < c.timeout*3/4 {
			c.readDeadline = now.Add(c.timeout)
			c.nc.SetReadDeadline(c.readDeadline)
		}
	} else if !c.readDeadline.IsZero() {
		c.readDeadline = time.Time{}
		c.nc.SetReadDeadline(c.readDeadline)
	}
	c.buf = c.buf[:0]
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, err
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if hdr[3] != c.seq {
			return nil, malformed("packet sequence %d, expected %d", hdr[3], c.seq)
		}
		c.seq++
		start := len(c.buf)
		if n > maxMessage-start {
			return nil, malformed("message of more than %d bytes (the protocol's largest is 1 GiB)", maxMessage)
		}
		if cap(c.buf)-start < n {
			nb := make([]byte, start, min(start+n+start/2, maxMessage))
			copy(nb, c.buf)
			c.buf = nb
		}
		c.buf = c.buf[:start+n]
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return nil, err
		}
		if n < maxPayload {
			break
		}
	}
	// A very large event must not pin its buffer for the connection's life.
	out := c.buf
	if cap(c.buf) > 16<<20 {
		c.buf = nil
	}
	return out, nil
}

// write sends payload as one message (split into packets as needed).
func (c *packetConn) write(payload []byte) error {
	if c.timeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	for {
		n := min(len(payload), maxPayload)
		c.wbuf = append(c.wbuf[:0], byte(n), byte(n>>8), byte(n>>16), c.seq)
		c.wbuf = append(c.wbuf, payload[:n]...)
		c.seq++
		if _, err := c.nc.Write(c.wbuf); err != nil {
			return err
		}
		payload = payload[n:]
		if n < maxPayload {
			return nil
		}
	}
}

// command starts a new command: the sequence restarts at 0.
func (c *packetConn) command(payload []byte) error {
	c.seq = 0
	return c.write(payload)
}

// reader is a cursor over a message or an event body. Its methods record
// the first short read in err instead of panicking, so a parser reads its
// fields and checks err once.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed("%s: truncated at byte %d of %d", what, r.off, len(r.b))
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) bytes(n int, what string) []byte {
	if n < 0 || r.left() < n {
		r.fail(what)
		r.off = len(r.b)
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) skip(n int, what string) { r.bytes(n, what) }

func (r *reader) u8(what string) uint8 {
	p := r.bytes(1, what)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) u16(what string) uint16 {
	p := r.bytes(2, what)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

func (r *reader) u24(what string) uint32 {
	p := r.bytes(3, what)
	if p == nil {
		return 0
	}
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16
}

func (r *reader) u32(what string) uint32 {
	p := r.bytes(4, what)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

func (r *reader) u48(what string) uint64 {
	p := r.bytes(6, what)
	if p == nil {
		return 0
	}
	return uint64(binary.LittleEndian.Uint32(p)) | uint64(binary.LittleEndian.Uint16(p[4:]))<<32
}

func (r *reader) u64(what string) uint64 {
	p := r.bytes(8, what)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

// lenenc reads a length-encoded integer. null is true for the 0xfb marker
// of a NULL column in a text result row.
func (r *reader) lenenc(what string) (v uint64, null bool) {
	c := r.u8(what)
	switch {
	case c < 0xfb:
		return uint64(c), false
	case c == 0xfb:
		return 0, true
	case c == 0xfc:
		return uint64(r.u16(what)), false
	case c == 0xfd:
		return uint64(r.u24(what)), false
	case c == 0xfe:
		return r.u64(what), false
	}
	r.fail(what + " (length marker 0xff)")
	return 0, false
}

// lenencBytes reads a length-encoded string.
func (r *reader) lenencBytes(what string) (p []byte, null bool) {
	n, null := r.lenenc(what)
	if null || r.err != nil {
		return nil, null
	}
	if n > uint64(r.left()) {
		r.fail(what)
		r.off = len(r.b)
		return nil, false
	}
	return r.bytes(int(n), what), false
}

// cstring reads a NUL-terminated string (or the rest when there is no NUL).
func (r *reader) cstring(what string) []byte {
	if r.err != nil {
		return nil
	}
	rest := r.b[r.off:]
	for i, c := range rest {
		if c == 0 {
			r.off += i + 1
			return rest[:i:i]
		}
	}
	r.off = len(r.b)
	return rest
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	p := r.b[r.off:]
	r.off = len(r.b)
	return p
}

func appendLenenc(b []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xfe), v)
}
