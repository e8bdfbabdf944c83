package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/sluicehq/sluice/runtime/statedir"
)

// The cursor file holds two fixed slots written alternately. Each write
// replaces one slot in place with a single pwrite; a write torn by a power
// cut breaks at most that slot's checksum and the other, older slot is used.
// This costs one small write (and one fsync with Sync) per Commit, with no
// rename or directory fsync.
const (
	cursorMagic   = "SLCR"
	cursorVersion = 1
	cursorSlot    = 64
	cursorName    = "cursor"
)

// pos is a position in the buffer: a byte offset in a segment plus the
// global record count at that point, which is what positions are compared
// by (offsets restart in every segment).
type pos struct {
	seq    uint64 // segment
	off    int64  // byte offset in the segment
	index  uint64 // global number of the record at off
	groups uint64 // records with Tag.Last before index
}

type cursorFile struct {
	f   *os.File
	gen uint64
	buf [cursorSlot]byte
}

func encodeCursor(dst []byte, gen uint64, p pos) {
	clear(dst[:cursorSlot])
	copy(dst, cursorMagic)
	binary.LittleEndian.PutUint16(dst[4:], cursorVersion)
	binary.LittleEndian.PutUint64(dst[8:], gen)
	binary.LittleEndian.PutUint64(dst[16:], p.seq)
	binary.LittleEndian.PutUint64(dst[24:], uint64(p.off))
	binary.LittleEndian.PutUint64(dst[32:], p.index)
	binary.LittleEndian.PutUint64(dst[40:], p.groups)
	binary.LittleEndian.PutUint32(dst[60:], crc32.Checksum(dst[:60], castagnoli))
}

func decodeCursor(b []byte) (gen uint64, p pos, ok bool) {
	if len(b) < cursorSlot || string(b[:4]) != cursorMagic ||
		binary.LittleEndian.Uint16(b[4:]) != cursorVersion ||
		crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return 0, pos{}, false
	}
	p = pos{
		seq:    binary.LittleEndian.Uint64(b[16:]),
		off:    int64(binary.LittleEndian.Uint64(b[24:])),
		index:  binary.LittleEndian.Uint64(b[32:]),
		groups: binary.LittleEndian.Uint64(b[40:]),
	}
	if p.off < headerSize {
		return 0, pos{}, false
	}
	return binary.LittleEndian.Uint64(b[8:]), p, true
}

// openCursor opens (creating) the cursor file and returns the newest valid
// position in it. found is false for a new or unreadable file; damaged is
// true when the file had content but no valid slot.
func openCursor(path string) (c *cursorFile, p pos, found, damaged bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, statedir.FileMode)
	if err != nil {
		return nil, pos{}, false, false, err
	}
	var raw [2 * cursorSlot]byte
	n, err := f.ReadAt(raw[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, pos{}, false, false, fmt.Errorf("read %s: %w", path, err)
	}
	c = &cursorFile{f: f}
	for i := range 2 {
		if n < (i+1)*cursorSlot {
			break
		}
		if gen, q, ok := decodeCursor(raw[i*cursorSlot:]); ok && (!found || gen > c.gen) {
			c.gen, p, found = gen, q, true
		}
	}
	return c, p, found, !found && n > 0, nil
}

// write stores p in the slot not holding the newest position.
func (c *cursorFile) write(p pos, sync bool) error {
	gen := c.gen + 1
	encodeCursor(c.buf[:], gen, p)
	if _, err := c.f.WriteAt(c.buf[:], int64(gen%2)*cursorSlot); err != nil {
		return err
	}
	c.gen = gen
	if sync {
		return datasync(c.f)
	}
	return nil
}
