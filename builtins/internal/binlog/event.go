package binlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// EventType is the type byte of an event header.
type EventType uint8

// Event types this package knows by name.
const (
	QueryEvent             EventType = 2
	StopEvent              EventType = 3
	RotateEvent            EventType = 4
	FormatDescriptionEvent EventType = 15
	XIDEvent               EventType = 16
	TableMapEvent          EventType = 19
	WriteRowsEventV1       EventType = 23
	UpdateRowsEventV1      EventType = 24
	DeleteRowsEventV1      EventType = 25
	IncidentEvent          EventType = 26
	HeartbeatEvent         EventType = 27
	RowsQueryEvent         EventType = 29
	WriteRowsEventV2       EventType = 30
	UpdateRowsEventV2      EventType = 31
	DeleteRowsEventV2      EventType = 32
	MySQLGTIDEvent         EventType = 33
	AnonymousGTIDEvent     EventType = 34
	PreviousGTIDsEvent     EventType = 35
	PartialUpdateRowsEvent EventType = 39
	TransactionPayload     EventType = 40
	HeartbeatEventV2       EventType = 41

	AnnotateRowsEvent      EventType = 160
	BinlogCheckpointEvent  EventType = 161
	MariaGTIDEvent         EventType = 162
	MariaGTIDListEvent     EventType = 163
	StartEncryptionEvent   EventType = 164
	QueryCompressedEvent   EventType = 165
	WriteRowsCompressedV1  EventType = 166
	UpdateRowsCompressedV1 EventType = 167
	DeleteRowsCompressedV1 EventType = 168
	WriteRowsCompressed    EventType = 169
	UpdateRowsCompressed   EventType = 170
	DeleteRowsCompressed   EventType = 171
)

func (t EventType) String() string {
	switch t {
	case QueryEvent:
		return "QUERY"
	case RotateEvent:
		return "ROTATE"
	case FormatDescriptionEvent:
		return "FORMAT_DESCRIPTION"
	case XIDEvent:
		return "XID"
	case TableMapEvent:
		return "TABLE_MAP"
	case WriteRowsEventV1, WriteRowsEventV2:
		return "WRITE_ROWS"
	case UpdateRowsEventV1, UpdateRowsEventV2:
		return "UPDATE_ROWS"
	case DeleteRowsEventV1, DeleteRowsEventV2:
		return "DELETE_ROWS"
	case HeartbeatEvent, HeartbeatEventV2:
		return "HEARTBEAT"
	case MariaGTIDEvent, MySQLGTIDEvent:
		return "GTID"
	case MariaGTIDListEvent:
		return "GTID_LIST"
	}
	return "EVENT_" + strconv.Itoa(int(t))
}

// HeaderLen is the size of a v4 event header.
const HeaderLen = 19

// Flags of an event header.
const (
	// FlagArtificial marks events the server makes up for the stream (the
	// rotate that opens it): their LogPos is not a position of the file.
	FlagArtificial = 0x20
)

// Header is an event's common header.
type Header struct {
	Timestamp uint32 // seconds since the epoch when the statement began
	Type      EventType
	ServerID  uint32
	Size      uint32 // of the whole event, header and checksum included
	LogPos    uint32 // position of the next event in the binlog file
	Flags     uint16
}

// ParseHeader reads an event header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, malformed("event header: %d bytes, need %d", len(b), HeaderLen)
	}
	return Header{
		Timestamp: binary.LittleEndian.Uint32(b),
		Type:      EventType(b[4]),
		ServerID:  binary.LittleEndian.Uint32(b[5:]),
		Size:      binary.LittleEndian.Uint32(b[9:]),
		LogPos:    binary.LittleEndian.Uint32(b[13:]),
		Flags:     binary.LittleEndian.Uint16(b[17:]),
	}, nil
}

// Checksum algorithms of the format description event.
const (
	ChecksumOff   = 0
	ChecksumCRC32 = 1
	// ChecksumUndefined: the server predates checksums.
	ChecksumUndefined = 0xff
)

// FormatDescription says how the events after it are laid out.
type FormatDescription struct {
	BinlogVersion  uint16
	ServerVersion  string
	HeaderLen      uint8
	PostHeaderLens []byte // by event type - 1
	ChecksumAlg    uint8
}

// postHeaderLen returns the post-header length of t, or def when the
// format description does not list t.
func (f *FormatDescription) postHeaderLen(t EventType, def int) int {
	if f == nil || int(t) == 0 || int(t) > len(f.PostHeaderLens) {
		return def
	}
	return int(f.PostHeaderLens[t-1])
}

// ParseFormatDescription reads the body (after the header, checksum
// included) of a FORMAT_DESCRIPTION event.
func ParseFormatDescription(body []byte) (*FormatDescription, error) {
	r := reader{b: body}
	f := &FormatDescription{BinlogVersion: r.u16("binlog version")}
	sv := r.bytes(50, "server version")
	if i := strings.IndexByte(string(sv), 0); i >= 0 {
		sv = sv[:i]
	}
	f.ServerVersion = string(sv)
	r.skip(4, "create timestamp")
	f.HeaderLen = r.u8("header length")
	rest := r.rest()
	if r.err != nil {
		return nil, fmt.Errorf("format description: %w", r.err)
	}
	if f.BinlogVersion != 4 {
		return nil, &UnsupportedError{fmt.Sprintf("binlog format version %d is not supported (want 4: MySQL 5.0+ / MariaDB)", f.BinlogVersion)}
	}
	if f.HeaderLen != HeaderLen {
		return nil, malformed("format description: header length %d, want %d", f.HeaderLen, HeaderLen)
	}
	f.ChecksumAlg = ChecksumUndefined
	if versionAtLeast(f.ServerVersion, 5, 6, 1) {
		// The algorithm byte and the (possibly unused) checksum end it.
		if len(rest) < 5 {
			return nil, malformed("format description: no checksum algorithm")
		}
		f.ChecksumAlg = rest[len(rest)-5]
		rest = rest[:len(rest)-5]
	}
	f.PostHeaderLens = append([]byte(nil), rest...)
	return f, nil
}

// versionAtLeast compares the leading "x.y.z" of a server version.
func versionAtLeast(v string, major, minor, patch int) bool {
	var n [3]int
	i := 0
	for k := range 3 {
		j := i
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		if j == i {
			break
		}
		n[k], _ = strconv.Atoi(v[i:j])
		i = j
		if i < len(v) && v[i] == '.' {
			i++
		} else {
			break
		}
	}
	if n[0] != major {
		return n[0] > major
	}
	if n[1] != minor {
		return n[1] > minor
	}
	return n[2] >= patch
}

// Event is one event of the stream: its header and its body, without the
// checksum. Body aliases the stream's buffer: it is valid until the next
// event is read.
type Event struct {
	Header
	Body []byte
	// Raw is the whole event as received (header, body, checksum).
	Raw []byte
}

// Decoder turns raw events into checked ones. It follows the format
// description events of the stream to know the checksum algorithm and the
// post-header lengths.
type Decoder struct {
	// ChecksumAlg is the algorithm of the events before the first format
	// description event (the server's binlog_checksum: the rotate event
	// that opens a stream is checksummed with it).
	ChecksumAlg uint8
	Format      *FormatDescription
}

// Decode checks an event (size, checksum) and returns it.
func (d *Decoder) Decode(raw []byte) (Event, error) {
	h, err := ParseHeader(raw)
	if err != nil {
		return Event{}, err
	}
	if int(h.Size) != len(raw) {
		return Event{}, malformed("%s event: header says %d bytes, got %d", h.Type, h.Size, len(raw))
	}
	ev := Event{Header: h, Body: raw[HeaderLen:], Raw: raw}
	if h.Type == FormatDescriptionEvent {
		f, err := ParseFormatDescription(ev.Body)
		if err != nil {
			return Event{}, err
		}
		if f.ChecksumAlg == ChecksumCRC32 {
			if err := verifyCRC(raw); err != nil {
				return Event{}, fmt.Errorf("%s event: %w", h.Type, err)
			}
		}
		if f.ChecksumAlg != ChecksumUndefined {
			ev.Body = ev.Body[:len(ev.Body)-4]
		}
		d.Format = f
		d.ChecksumAlg = f.ChecksumAlg
		return ev, nil
	}
	switch d.ChecksumAlg {
	case ChecksumCRC32:
		if err := verifyCRC(raw); err != nil {
			return Event{}, fmt.Errorf("%s event at %d: %w", h.Type, h.LogPos, err)
		}
		ev.Body = ev.Body[:len(ev.Body)-4]
	case ChecksumOff, ChecksumUndefined:
	default:
		return Event{}, &UnsupportedError{fmt.Sprintf("binlog checksum algorithm %d is not supported (set binlog_checksum to CRC32 or NONE)", d.ChecksumAlg)}
	}
	return ev, nil
}

// ErrChecksum is wrapped by the error of an event whose CRC32 is wrong.
var ErrChecksum = fmt.Errorf("%w: checksum mismatch", ErrMalformed)

func verifyCRC(raw []byte) error {
	if len(raw) < HeaderLen+4 {
		return malformed("too short for a checksum")
	}
	n := len(raw) - 4
	want := binary.LittleEndian.Uint32(raw[n:])
	if got := crc32.ChecksumIEEE(raw[:n]); got != want {
		return fmt.Errorf("%w (event says %08x, computed %08x)", ErrChecksum, want, got)
	}
	return nil
}

// Rotate names the binlog file the stream goes on with.
type Rotate struct {
	Pos  uint64
	File string
}

// ParseRotate reads a ROTATE event body.
func (d *Decoder) ParseRotate(body []byte) (Rotate, error) {
	r := reader{b: body}
	var rot Rotate
	if d.Format.postHeaderLen(RotateEvent, 8) >= 8 {
		rot.Pos = r.u64("rotate position")
	}
	rot.File = string(r.rest())
	if r.err != nil {
		return Rotate{}, fmt.Errorf("rotate event: %w", r.err)
	}
	if rot.File == "" {
		return Rotate{}, malformed("rotate event without a file name")
	}
	return rot, nil
}

// MariaDB GTID event flags.
const (
	GTIDStandalone    = 1  // no COMMIT or XID ends the group (DDL)
	GTIDGroupCommitID = 2  // a commit id follows
	GTIDPreparedXA    = 64 // an XA PREPARE: the group ends without committing
	GTIDCompletedXA   = 128
)

// GTID is a MariaDB global transaction id: domain-server-sequence.
type GTID struct {
	Domain   uint32
	ServerID uint32
	Seq      uint64
}

func (g GTID) String() string { return string(g.Append(nil)) }

// Append appends "domain-server-seq".
func (g GTID) Append(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(g.Domain), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(g.ServerID), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, g.Seq, 10)
}

// MariaGTID is a MariaDB GTID event: it opens an event group.
type MariaGTID struct {
	GTID
	Flags uint8
}

// ParseMariaGTID reads a MariaDB GTID_EVENT.
func ParseMariaGTID(h Header, body []byte) (MariaGTID, error) {
	r := reader{b: body}
	g := MariaGTID{}
	g.Seq = r.u64("gtid sequence")
	g.Domain = r.u32("gtid domain")
	g.Flags = r.u8("gtid flags")
	g.ServerID = h.ServerID
	if r.err != nil {
		return MariaGTID{}, fmt.Errorf("gtid event: %w", r.err)
	}
	return g, nil
}

// ParseMariaGTIDList reads a GTID_LIST event: the binlog state when the file
// began.
func ParseMariaGTIDList(body []byte) ([]GTID, error) {
	r := reader{b: body}
	n := r.u32("gtid count") & 0x0fffffff
	if r.err == nil && uint64(n)*16 > uint64(r.left()) {
		return nil, malformed("gtid list: %d entries in %d bytes", n, r.left())
	}
	out := make([]GTID, 0, n)
	for range n {
		g := GTID{Domain: r.u32("gtid domain"), ServerID: r.u32("gtid server"), Seq: r.u64("gtid sequence")}
		out = append(out, g)
	}
	if r.err != nil {
		return nil, fmt.Errorf("gtid list event: %w", r.err)
	}
	return out, nil
}

// MySQLGTID is a MySQL GTID event: source UUID and transaction number.
type MySQLGTID struct {
	SID [16]byte
	GNO uint64
}

func (g MySQLGTID) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 60)
	for i, c := range g.SID {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&15])
	}
	b = append(b, ':')
	return string(strconv.AppendUint(b, g.GNO, 10))
}

// ParseMySQLGTID reads a MySQL GTID_LOG_EVENT.
func ParseMySQLGTID(body []byte) (MySQLGTID, error) {
	r := reader{b: body}
	r.skip(1, "gtid flags")
	var g MySQLGTID
	copy(g.SID[:], r.bytes(16, "gtid source id"))
	g.GNO = r.u64("gtid number")
	if r.err != nil {
		return MySQLGTID{}, fmt.Errorf("gtid event: %w", r.err)
	}
	return g, nil
}

// Query is a QUERY event: BEGIN, COMMIT, ROLLBACK, DDL, or a statement of
// statement-based logging.
type Query struct {
	Schema string
	Query  string
}

// ParseQuery reads a QUERY event.
func (d *Decoder) ParseQuery(body []byte) (Query, error) {
	r := reader{b: body}
	phl := d.Format.postHeaderLen(QueryEvent, 13)
	r.skip(4, "thread id")
	r.skip(4, "exec time")
	dbLen := int(r.u8("schema length"))
	r.skip(2, "error code")
	statusLen := 0
	if phl >= 13 {
		statusLen = int(r.u16("status length"))
	}
	r.skip(phl-min(phl, 13), "post header")
	r.skip(statusLen, "status variables")
	schema := r.bytes(dbLen, "schema")
	r.skip(1, "schema terminator")
	q := r.rest()
	if r.err != nil {
		return Query{}, fmt.Errorf("query event: %w", r.err)
	}
	return Query{Schema: string(schema), Query: string(q)}, nil
}

// ParseXID reads an XID event: the commit of a transaction.
func ParseXID(body []byte) (uint64, error) {
	r := reader{b: body}
	x := r.u64("xid")
	if r.err != nil {
		return 0, fmt.Errorf("xid event: %w", r.err)
	}
	return x, nil
}

// IsRows reports whether t is a write, update or delete rows event.
func (t EventType) IsRows() bool {
	switch t {
	case WriteRowsEventV1, UpdateRowsEventV1, DeleteRowsEventV1,
		WriteRowsEventV2, UpdateRowsEventV2, DeleteRowsEventV2:
		return true
	}
	return false
}

// UnsupportedError is a binlog this package cannot read as the server
// writes it: reading it again does not help, a server setting must
// change (the message says which).
type UnsupportedError struct{ Msg string }

func (e *UnsupportedError) Error() string { return e.Msg }

// UnreadableRows reports whether t is a rows event this package cannot
// read (compressed, or a partial update) that still begins with its table
// id, as every rows event does: a reader can tell whose rows it holds.
func (t EventType) UnreadableRows() bool {
	switch t {
	case WriteRowsCompressedV1, UpdateRowsCompressedV1, DeleteRowsCompressedV1,
		WriteRowsCompressed, UpdateRowsCompressed, DeleteRowsCompressed, PartialUpdateRowsEvent:
		return true
	}
	return false
}

// Unsupported explains why an event type this package cannot read is a
// problem, or returns "" for a type it can read or callers may skip.
func (t EventType) Unsupported() string {
	switch t {
	case QueryCompressedEvent, WriteRowsCompressedV1, UpdateRowsCompressedV1, DeleteRowsCompressedV1,
		WriteRowsCompressed, UpdateRowsCompressed, DeleteRowsCompressed:
		return "compressed binlog events are not supported: set log_bin_compress = OFF on the server"
	case PartialUpdateRowsEvent:
		return "partial JSON updates are not supported: set binlog_row_value_options = '' on the server"
	case TransactionPayload:
		return "compressed transaction payloads are not supported: set binlog_transaction_compression = OFF on the server"
	}
	return ""
}
