package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// On-disk layout; see the package documentation for the byte-level format.
const (
	segMagic      = "SLBF"
	segVersion    = 1
	headerSize    = 40 // segment header
	frameOverhead = 8  // size u32 + crc u32 before each record body

	// recordFixed is the fixed part of a record body: flags, group,
	// partition, offset, seconds, nanoseconds.
	recordFixed = 1 + 4 + 4 + 8 + 8 + 4
	// minRecord is the smallest valid body: the fixed part plus one length
	// byte for each of stream, key, payload and the header count (the event
	// may be left out, see flagSameEvent).
	minRecord = recordFixed + 4

	// MaxRecordSize is the largest encoded record Append accepts. It bounds
	// the memory a reader needs for one record, so a corrupted length field
	// can never make it allocate more.
	MaxRecordSize = 256 << 20
)

// Record flags (first byte of a body). Unknown bits are rejected so that a
// later format that needs them bumps the segment version instead.
const (
	flagBatchEnd = 1 << 0 // last record of one Append call
	flagLast     = 1 << 1 // Tag.Last
	// flagSameEvent: Event equals Payload and is not stored (a task without
	// transforms delivers the source event itself).
	flagSameEvent = 1 << 2
	knownFlags    = flagBatchEnd | flagLast | flagSameEvent
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segHeader is the fixed header at the start of every segment file.
type segHeader struct {
	seq         uint64 // segment sequence number, also in the file name
	firstIndex  uint64 // global number of the segment's first record
	firstGroups uint64 // records with Tag.Last appended before this segment
	// born is when the segment's first record was appended, in Unix
	// seconds (0: unknown, a segment written before this field existed).
	// It lives in bytes that version 1 reserved and did not check, so
	// older builds read these segments unchanged.
	born uint32
}

func (h segHeader) append(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, segMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, segVersion)
	dst = binary.LittleEndian.AppendUint16(dst, headerSize)
	dst = binary.LittleEndian.AppendUint64(dst, h.seq)
	dst = binary.LittleEndian.AppendUint64(dst, h.firstIndex)
	dst = binary.LittleEndian.AppendUint64(dst, h.firstGroups)
	dst = binary.LittleEndian.AppendUint32(dst, h.born)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func parseHeader(b []byte) (segHeader, error) {
	if len(b) < headerSize {
		return segHeader{}, fmt.Errorf("header is %d bytes, want %d", len(b), headerSize)
	}
	b = b[:headerSize]
	if string(b[:4]) != segMagic {
		return segHeader{}, fmt.Errorf("not a buffer segment (magic %q, want %q)", b[:4], segMagic)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != segVersion {
		return segHeader{}, &versionError{v}
	}
	if crc32.Checksum(b[:36], castagnoli) != binary.LittleEndian.Uint32(b[36:]) {
		return segHeader{}, errors.New("header checksum mismatch")
	}
	if n := binary.LittleEndian.Uint16(b[6:]); n != headerSize {
		return segHeader{}, fmt.Errorf("header size %d, want %d", n, headerSize)
	}
	return segHeader{
		seq:         binary.LittleEndian.Uint64(b[8:]),
		firstIndex:  binary.LittleEndian.Uint64(b[16:]),
		firstGroups: binary.LittleEndian.Uint64(b[24:]),
		born:        binary.LittleEndian.Uint32(b[32:]),
	}, nil
}

// versionError is a segment written in a format this build does not read.
// Open refuses it rather than treating it as damage, so that running an
// older Sluice on a newer buffer never deletes data.
type versionError struct{ version uint16 }

func (e *versionError) Error() string {
	return fmt.Sprintf("segment format version %d, this build reads version %d (run the Sluice version that wrote it, or move the buffer directory away)", e.version, segVersion)
}

// frameCRC is the checksum stored in a frame: CRC-32C over the size field
// and the body, so a damaged size is caught as well as a damaged body.
func frameCRC(sizeField, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(sizeField, castagnoli), castagnoli, body)
}

// appendFrame appends m as one framed record.
func appendFrame(dst []byte, m *message.Message, tag Tag, batchEnd bool) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // size and crc, filled below
	var flags byte
	if batchEnd {
		flags |= flagBatchEnd
	}
	if tag.Last {
		flags |= flagLast
	}
	sameEvent := m.Event != nil && m.Payload != nil && bytes.Equal(m.Event, m.Payload)
	if sameEvent {
		flags |= flagSameEvent
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, tag.Group)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Pos.Partition))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Pos.Offset))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Time.Unix()))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Time.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(m.Pos.Stream)))
	dst = append(dst, m.Pos.Stream...)
	dst = appendBytes(dst, m.Key)
	dst = appendBytes(dst, m.Payload)
	if !sameEvent {
		dst = appendBytes(dst, m.Event)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	for i := range m.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(m.Headers[i].Key)))
		dst = append(dst, m.Headers[i].Key...)
		dst = appendBytes(dst, m.Headers[i].Value)
	}
	body := dst[start+frameOverhead:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], frameCRC(dst[start:start+4], body))
	return dst
}

// frameSize is the length of what appendFrame appends for m.
func frameSize(m *message.Message) int { return frameSizeAt(m, true) }

// frameSizeAt is frameSize when exact is set; else an upper bound, found
// without comparing the event with the payload (the encoder writes the
// event only when they differ), which reads neither.
func frameSizeAt(m *message.Message, exact bool) int {
	n := frameOverhead + 1 + 4 + 4 + 8 + 8 + 4
	n += uvarintLen(uint64(len(m.Pos.Stream))) + len(m.Pos.Stream)
	n += bytesSize(m.Key) + bytesSize(m.Payload)
	if !exact || !(m.Event != nil && m.Payload != nil && bytes.Equal(m.Event, m.Payload)) {
		n += bytesSize(m.Event)
	}
	n += uvarintLen(uint64(len(m.Headers)))
	for i := range m.Headers {
		n += uvarintLen(uint64(len(m.Headers[i].Key))) + len(m.Headers[i].Key) + bytesSize(m.Headers[i].Value)
	}
	return n
}

// bytesSize is the length of what appendBytes appends for b.
func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return uvarintLen(uint64(len(b))+1) + len(b)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendBytes writes len+1 (0 for nil) and the bytes, so that a nil key and
// an empty key (different things to Kafka) survive the round trip.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// decodeState is what decoding borrows between records: a chunk to carve
// header slices from and a small string intern table.
type decodeState struct {
	hdrs    []message.Header
	strings map[string]string
}

// intern returns b as a string, reusing an earlier copy for short values
// (stream names and header keys repeat on nearly every record).
func (d *decodeState) intern(b []byte) string {
	if len(b) > 128 {
		return string(b)
	}
	if s, ok := d.strings[string(b)]; ok {
		return s
	}
	if d.strings == nil || len(d.strings) >= 1024 {
		d.strings = make(map[string]string, 64)
	}
	s := string(b)
	d.strings[s] = s
	return s
}

// decodeRecord decodes one record body into m and tag. The byte slices of m
// point into body, which the caller must not reuse while m is in use.
func (d *decodeState) decodeRecord(body []byte, m *message.Message, tag *Tag) (flags byte, err error) {
	if len(body) < minRecord {
		return 0, fmt.Errorf("record body is %d bytes, the minimum is %d", len(body), minRecord)
	}
	flags = body[0]
	if flags&^knownFlags != 0 {
		return 0, fmt.Errorf("unknown record flags %#x", flags)
	}
	tag.Group = binary.LittleEndian.Uint32(body[1:])
	tag.Last = flags&flagLast != 0
	m.Pos.Partition = int32(binary.LittleEndian.Uint32(body[5:]))
	m.Pos.Offset = int64(binary.LittleEndian.Uint64(body[9:]))
	sec := int64(binary.LittleEndian.Uint64(body[17:]))
	nsec := binary.LittleEndian.Uint32(body[25:])
	if nsec >= 1e9 {
		return 0, fmt.Errorf("time has %d nanoseconds", nsec)
	}
	m.Time = time.Unix(sec, int64(nsec)).UTC()
	r := reader{b: body[recordFixed:]}
	stream, ok := r.bytes()
	if !ok {
		return 0, errors.New("stream name runs past the record")
	}
	m.Pos.Stream = d.intern(stream)
	if m.Key, ok = r.nilBytes(); !ok {
		return 0, errors.New("key runs past the record")
	}
	if m.Payload, ok = r.nilBytes(); !ok {
		return 0, errors.New("payload runs past the record")
	}
	if flags&flagSameEvent != 0 {
		if m.Payload == nil {
			return 0, errors.New("event marked equal to a nil payload")
		}
		m.Event = m.Payload
	} else if m.Event, ok = r.nilBytes(); !ok {
		return 0, errors.New("event runs past the record")
	}
	n, ok := r.uvarint()
	if !ok || n > uint64(len(r.b))/2 { // a header takes at least two bytes
		return 0, errors.New("header count runs past the record")
	}
	m.Headers = nil
	if n > 0 {
		if uint64(cap(d.hdrs)-len(d.hdrs)) < n {
			d.hdrs = make([]message.Header, 0, max(n, 64))
		}
		start := len(d.hdrs)
		for range n {
			k, ok := r.bytes()
			if !ok {
				return 0, errors.New("header key runs past the record")
			}
			v, ok := r.nilBytes()
			if !ok {
				return 0, errors.New("header value runs past the record")
			}
			d.hdrs = append(d.hdrs, message.Header{Key: d.intern(k), Value: v})
		}
		// A full slice expression, so a stage appending a header copies
		// instead of overwriting the next record's headers.
		m.Headers = d.hdrs[start:len(d.hdrs):len(d.hdrs)]
	}
	if len(r.b) != 0 {
		return 0, fmt.Errorf("%d unexpected bytes after the record", len(r.b))
	}
	m.Err, m.Ref = nil, 0
	return flags, nil
}

// reader consumes length-prefixed fields from a record body.
type reader struct{ b []byte }

func (r *reader) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

func (r *reader) bytes() ([]byte, bool) {
	n, ok := r.uvarint()
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

func (r *reader) nilBytes() ([]byte, bool) {
	n, ok := r.uvarint()
	if !ok || n > uint64(len(r.b))+1 || n > math.MaxInt {
		return nil, false
	}
	if n == 0 {
		return nil, true
	}
	v := r.b[: n-1 : n-1]
	r.b = r.b[n-1:]
	return v, true
}
