package buffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// readBufSize is the read-ahead of a segment reader. With the per-batch byte
// cap it is what bounds a reader's memory, whatever the backlog.
const readBufSize = 256 << 10

// corruption is a record that cannot be trusted: a frame running past the
// end of the data, a checksum mismatch, a body that does not decode.
type corruption struct {
	off    int64 // offset of the bad frame in its segment
	reason string
}

func (c *corruption) Error() string {
	return fmt.Sprintf("offset %d: %s", c.off, c.reason)
}

// segReader reads one segment file up to limit, the end of the data a
// reader may see; bytes past it may still be being written.
type segReader struct {
	f     *os.File
	off   int64
	limit int64
}

func (s *segReader) Read(p []byte) (int, error) {
	if s.off >= s.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > s.limit-s.off {
		p = p[:s.limit-s.off]
	}
	n, err := s.f.ReadAt(p, s.off)
	s.off += int64(n)
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF // the file is shorter than we were told
		}
	}
	return n, err
}

// scanner walks the frames of one segment sequentially through a bounded
// read-ahead buffer: head reads and checks a frame header, body reads the
// record it announces.
type scanner struct {
	br    *bufio.Reader
	off   int64 // offset of the next frame
	limit int64 // end of the readable data

	size      uint32
	crc       uint32
	sizeField [4]byte
	hdr       [frameOverhead]byte
}

// head reads the next frame header and returns the body size. It returns
// io.EOF exactly at limit and a *corruption when the frame cannot be whole.
func (s *scanner) head() (int, error) {
	left := s.limit - s.off
	if left <= 0 {
		return 0, io.EOF
	}
	if left < frameOverhead {
		return 0, &corruption{s.off, fmt.Sprintf("%d stray bytes at the end (a frame header is %d)", left, frameOverhead)}
	}
	if _, err := io.ReadFull(s.br, s.hdr[:]); err != nil {
		return 0, ioError(s.off, err)
	}
	s.size = binary.LittleEndian.Uint32(s.hdr[0:])
	s.crc = binary.LittleEndian.Uint32(s.hdr[4:])
	copy(s.sizeField[:], s.hdr[:4])
	switch {
	case s.size < minRecord:
		return 0, &corruption{s.off, fmt.Sprintf("record size %d is below the minimum %d", s.size, minRecord)}
	case s.size > MaxRecordSize:
		return 0, &corruption{s.off, fmt.Sprintf("record size %d is above the maximum %d", s.size, MaxRecordSize)}
	case int64(s.size) > left-frameOverhead:
		return 0, &corruption{s.off, fmt.Sprintf("record of %d bytes runs past the end of the data (%d bytes left)", s.size, left-frameOverhead)}
	}
	return int(s.size), nil
}

// body reads the body announced by head into dst (len(dst) == size) and
// checks its checksum.
func (s *scanner) body(dst []byte) error {
	if _, err := io.ReadFull(s.br, dst); err != nil {
		return ioError(s.off, err)
	}
	if frameCRC(s.sizeField[:], dst) != s.crc {
		return &corruption{s.off, "record checksum mismatch"}
	}
	s.off += frameOverhead + int64(len(dst))
	return nil
}

// ioError turns a short read into corruption (the file is shorter than its
// recorded size) and keeps real read errors as they are.
func ioError(off int64, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &corruption{off, "file ends inside a record"}
	}
	return fmt.Errorf("read at offset %d: %w", off, err)
}

func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, readBufSize) }
