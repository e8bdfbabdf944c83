package binlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"net"
	"strings"
	"testing"
)

// mkEvent builds a raw event with a CRC32 checksum.
func mkEvent(typ EventType, logPos uint32, body []byte) []byte {
	size := HeaderLen + len(body) + 4
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, 1700000000)
	b = append(b, byte(typ))
	b = binary.LittleEndian.AppendUint32(b, 7)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, logPos)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// mysqlFDE is a MySQL 8 format description: rows events v2 with a 10-byte
// post header.
func mysqlFDE() []byte {
	body := binary.LittleEndian.AppendUint16(nil, 4)
	sv := make([]byte, 50)
	copy(sv, "8.0.36")
	body = append(body, sv...)
	body = binary.LittleEndian.AppendUint32(body, 0)
	body = append(body, HeaderLen)
	phl := make([]byte, 41)
	phl[QueryEvent-1] = 13
	phl[RotateEvent-1] = 8
	phl[TableMapEvent-1] = 8
	for _, t := range []EventType{WriteRowsEventV1, UpdateRowsEventV1, DeleteRowsEventV1} {
		phl[t-1] = 8
	}
	for _, t := range []EventType{WriteRowsEventV2, UpdateRowsEventV2, DeleteRowsEventV2} {
		phl[t-1] = 10
	}
	body = append(body, phl...)
	body = append(body, ChecksumCRC32)
	return mkEvent(FormatDescriptionEvent, 120, body)
}

func TestMySQLRowsV2(t *testing.T) {
	var dec Decoder
	if _, err := dec.Decode(mysqlFDE()); err != nil {
		t.Fatal(err)
	}
	// Table map: test.t (id INT UNSIGNED, doc JSON, name VARCHAR(10)), with
	// FULL row metadata: signedness and names.
	tm := []byte{42, 0, 0, 0, 0, 0, 1, 0}
	tm = append(tm, 4, 't', 'e', 's', 't', 0, 1, 't', 0)
	tm = append(tm, 3, byte(TypeLong), byte(TypeJSON), byte(TypeVarchar))
	tm = append(tm, 3, 4, 40, 0) // metadata: JSON length bytes 4, varchar max 40
	tm = append(tm, 0b110)       // nullable doc, name
	tm = append(tm, metaSignedness, 1, 0x80)
	names := []byte{2, 'i', 'd', 3, 'd', 'o', 'c', 4, 'n', 'a', 'm', 'e'}
	tm = append(tm, metaColumnName, byte(len(names)))
	tm = append(tm, names...)
	ev, err := dec.Decode(mkEvent(TableMapEvent, 200, tm))
	if err != nil {
		t.Fatal(err)
	}
	m, err := dec.ParseTableMap(ev.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasNames || !m.HasSignedness || m.Columns[0].Name != "id" || !m.Columns[0].Unsigned || m.Columns[2].Name != "name" {
		t.Fatalf("table map %+v", m)
	}
	doc := binaryJSONSamples[0].bin
	rows := []byte{42, 0, 0, 0, 0, 0, 1, 0, 4, 0, 0xaa, 0xbb} // table id, flags, 4 bytes of extra data
	rows = append(rows, 3, 0b111)
	row := []byte{0b100} // name is NULL
	row = binary.LittleEndian.AppendUint32(row, math.MaxUint32)
	row = binary.LittleEndian.AppendUint32(row, uint32(len(doc)))
	row = append(row, doc...)
	rows = append(rows, row...)
	ev, err = dec.Decode(mkEvent(WriteRowsEventV2, 300, rows))
	if err != nil {
		t.Fatal(err)
	}
	var re RowsEvent
	if err := dec.ParseRows(ev.Header, ev.Body, &re); err != nil {
		t.Fatal(err)
	}
	cells := make([]Cell, 3)
	if err := re.NextImage(m, false, cells); err != nil {
		t.Fatal(err)
	}
	if re.More() {
		t.Fatal("more than one row")
	}
	id, _ := AppendJSON(nil, &m.Columns[0], cells[0].Raw)
	js, _ := AppendJSON(nil, &m.Columns[1], cells[1].Raw)
	if string(id) != "4294967295" || string(js) != binaryJSONSamples[0].want || !cells[2].Null {
		t.Fatalf("row: %s %s %+v", id, js, cells[2])
	}
	// A flipped bit fails the checksum.
	bad := mkEvent(WriteRowsEventV2, 300, rows)
	bad[HeaderLen+3] ^= 1
	if _, err := dec.Decode(bad); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupted event: %v, want a checksum error", err)
	}
}

var binaryJSONSamples = []struct {
	bin  []byte
	want string
}{
	{append([]byte{jsonSmallObject},
		2, 0, 32, 0,
		18, 0, 1, 0,
		19, 0, 1, 0,
		jsonInt16, 1, 0,
		jsonSmallArray, 20, 0,
		'a', 'b',
		2, 0, 12, 0,
		jsonLiteral, 1, 0,
		jsonString, 10, 0,
		1, 'x'), `{"a":1,"b":[true,"x"]}`},
	{binary.LittleEndian.AppendUint64([]byte{jsonDouble}, math.Float64bits(3.5)), `3.5`},
	{[]byte{jsonString, 3, 'a', '"', 'b'}, `"a\"b"`},
	{[]byte{jsonLargeArray, 3, 0, 0, 0, 23, 0, 0, 0,
		jsonInt32, 0xfb, 0xff, 0xff, 0xff,
		jsonUint32, 7, 0, 0, 0,
		jsonLiteral, 0, 0, 0, 0}, `[-5,7,null]`},
	{[]byte{jsonOpaque, byte(TypeNewDecimal), 4, 2, 1, 0x81, 0x05}, `1.5`},
	{binary.LittleEndian.AppendUint64([]byte{jsonUint64}, math.MaxUint64), `18446744073709551615`},
	{binary.LittleEndian.AppendUint64([]byte{jsonInt64}, uint64(1<<63)), `-9223372036854775808`},
	{[]byte{jsonLiteral, 2}, `false`},
	{nil, `null`},
}

func TestBinaryJSON(t *testing.T) {
	for _, s := range binaryJSONSamples {
		got, err := AppendBinaryJSON(nil, s.bin)
		if err != nil || string(got) != s.want {
			t.Errorf("%x: %s, %v; want %s", s.bin, got, err, s.want)
		}
	}
	// Truncated containers are errors, not panics.
	for n := 1; n < len(binaryJSONSamples[0].bin); n++ {
		if out, err := AppendBinaryJSON(nil, binaryJSONSamples[0].bin[:n]); err == nil && !json.Valid(out) {
			t.Fatalf("truncated to %d: %q", n, out)
		}
	}
}

func TestTemporal(t *testing.T) {
	for _, c := range []struct {
		col  Column
		raw  []byte
		want string
	}{
		// TIME(2) -00:00:00.01 and TIME(4) -01:00:00.0001: negative fractions.
		{Column{Type: TypeTime2, Meta: 2}, []byte{0x7f, 0xff, 0xff, 0xff}, `"-00:00:00.01"`},
		{Column{Type: TypeTime2, Meta: 4}, []byte{0x7f, 0xef, 0xff, 0xff, 0xff}, `"-01:00:00.0001"`},
		{Column{Type: TypeTime2, Meta: 0}, []byte{0x80, 0x10, 0x00}, `"01:00:00"`},
		{Column{Type: TypeTimestamp2, Meta: 3}, []byte{0x65, 0x93, 0x7c, 0x30, 0x27, 0x06}, `"2024-01-02T03:00:00.999Z"`},
		{Column{Type: TypeTimestamp, Meta: 0}, []byte{0, 0, 0, 0}, `null`},
		{Column{Type: TypeDateTime}, binary.LittleEndian.AppendUint64(nil, 20240102030405), `"2024-01-02T03:04:05Z"`},
		{Column{Type: TypeTime}, []byte{0x23, 0xd8, 0xff}, `"-01:02:05"`}, // -10205
		{Column{Type: TypeYear}, []byte{124}, `2024`},
		{Column{Type: TypeBit, Bits: 64}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, `18446744073709551615`},
		{Column{Type: TypeEnum, Meta: 2}, []byte{3, 0}, `3`},
		{Column{Type: TypeSet, Meta: 1, Members: []string{"a", `"b"`}}, []byte{3}, `"a,\"b\""`},
		{Column{Type: TypeVarchar, Meta: 10, Latin1: true}, []byte{3, 'c', 0xe9, 0x80}, `"cé€"`},
		{Column{Type: TypeVarchar, Meta: 10}, []byte{3, 'a', 0xff, 0x01}, `"a\ufffd\u0001"`},
		{Column{Type: TypeBlob, Meta: 2, JSON: true}, []byte{5, 0, 'n', 'o', 'p', 'e', '!'}, `"nope!"`},
		{Column{Type: TypeFloat, Meta: 4}, binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.1)), `1.1`},
	} {
		got, err := AppendJSON(nil, &c.col, c.raw)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v %x: %s, %v; want %s", c.col, c.raw, got, err, c.want)
		}
	}
	if _, err := AppendJSON(nil, &Column{Type: TypeLong}, []byte{1, 2}); err == nil {
		t.Error("a short value was accepted")
	}
}

func TestParseMembers(t *testing.T) {
	got := strings.Join(ParseMembers(`enum('a','b''c','d,e','')`), "|")
	if got != "a|b'c|d,e|" {
		t.Fatalf("members %q", got)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"5.6.1": true, "5.6.0": false, "10.11.19-MariaDB-log": true, "5.5.5-10.11": false, "8.0": true, "": false} {
		if versionAtLeast(v, 5, 6, 1) != want {
			t.Errorf("%q", v)
		}
	}
}

// A checksum algorithm this package does not know is an UnsupportedError
// (a setting to change, no retry helps), not a malformed event.
func TestUnknownChecksumIsUnsupported(t *testing.T) {
	d := Decoder{ChecksumAlg: 7}
	raw := make([]byte, HeaderLen+8)
	raw[4] = byte(XIDEvent)
	binary.LittleEndian.PutUint32(raw[9:], uint32(len(raw)))
	_, err := d.Decode(raw)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "set binlog_checksum to CRC32 or NONE") {
		t.Fatalf("Decode with checksum algorithm 7: %v, want an UnsupportedError naming binlog_checksum", err)
	}
}

// A large container's counts, sizes and offsets are uint32s: past 2^31
// they were negative ints on 32-bit platforms (armv7 is a release
// platform), passed the range checks and panicked the slicing. Each must
// be an error. On 64-bit platforms this passed before the fix too.
func TestBinaryJSONHugeOffsets(t *testing.T) {
	for _, c := range []struct {
		name string
		bin  []byte
		want string
	}{
		{"size 2^32-1", []byte{jsonLargeArray, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, "json container header"},
		{"count 2^31", []byte{jsonLargeArray, 0, 0, 0, 0x80, 8, 0, 0, 0}, "json container of 2147483648 entries in 8 bytes"},
		{"key offset 2^31-1", []byte{jsonLargeObject, 1, 0, 0, 0, 19, 0, 0, 0,
			0xff, 0xff, 0xff, 0x7f, 1, 0, // key: offset, length
			jsonLiteral, 0, 0, 0, 0}, "json key out of range"},
		{"value offset 2^31", []byte{jsonLargeArray, 1, 0, 0, 0, 13, 0, 0, 0,
			jsonString, 0, 0, 0, 0x80}, "json value offset 2147483648 out of 13"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := AppendBinaryJSON(nil, c.bin)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q, %v; want an error %q", out, err, c.want)
			}
		})
	}
}

// A message joined from packets past maxMessage (1 GiB; 20 MiB here) is
// an error, not a buffer grown without end (past 2^31 bytes the sizes
// overflow an int on 32-bit platforms).
func TestMessageTooLarge(t *testing.T) {
	old := maxMessage
	maxMessage = 20 << 20
	defer func() { maxMessage = old }()
	server, client := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		// Packets of the largest payload (16 MiB - 1) continue the message:
		// the first fits, the second would take it past the limit.
		for seq := byte(0); seq < 2; seq++ {
			if _, err := server.Write([]byte{0xff, 0xff, 0xff, seq}); err != nil {
				return
			}
			if _, err := io.Copy(server, io.LimitReader(zeros{}, 1<<24-1)); err != nil {
				return
			}
		}
	}()
	_, err := newPacketConn(client).read()
	if err == nil || !strings.Contains(err.Error(), "message of more than 20971520 bytes") {
		t.Fatalf("read: %v, want the message refused", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
