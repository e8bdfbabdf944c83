package binlog

import (
	"fmt"
)

// ColumnType is a column's type code in table map events.
type ColumnType uint8

// Column types.
const (
	TypeDecimal    ColumnType = 0
	TypeTiny       ColumnType = 1
	TypeShort      ColumnType = 2
	TypeLong       ColumnType = 3
	TypeFloat      ColumnType = 4
	TypeDouble     ColumnType = 5
	TypeNull       ColumnType = 6
	TypeTimestamp  ColumnType = 7
	TypeLongLong   ColumnType = 8
	TypeInt24      ColumnType = 9
	TypeDate       ColumnType = 10
	TypeTime       ColumnType = 11
	TypeDateTime   ColumnType = 12
	TypeYear       ColumnType = 13
	TypeNewDate    ColumnType = 14
	TypeVarchar    ColumnType = 15
	TypeBit        ColumnType = 16
	TypeTimestamp2 ColumnType = 17
	TypeDateTime2  ColumnType = 18
	TypeTime2      ColumnType = 19
	TypeJSON       ColumnType = 245
	TypeNewDecimal ColumnType = 246
	TypeEnum       ColumnType = 247
	TypeSet        ColumnType = 248
	TypeTinyBlob   ColumnType = 249
	TypeMediumBlob ColumnType = 250
	TypeLongBlob   ColumnType = 251
	TypeBlob       ColumnType = 252
	TypeVarString  ColumnType = 253
	TypeString     ColumnType = 254
	TypeGeometry   ColumnType = 255
)

// Column is one column of a table map: its binlog type and metadata, and
// what the binlog cannot say (name, signedness, character set, enum
// members), filled by the optional metadata of binlog_row_metadata or by
// the caller from information_schema.
type Column struct {
	Type     ColumnType // the real type: STRING's metadata unwrapped to ENUM or SET
	Meta     uint16
	Nullable bool

	Name     string
	Unsigned bool
	// Binary is true for binary strings (BINARY, VARBINARY, BLOB): their
	// values are rendered in base64.
	Binary bool
	// Latin1 is true for strings in the latin1 character set, converted
	// to UTF-8 (other character sets are taken as UTF-8).
	Latin1 bool
	// JSON is true for MariaDB's JSON columns (LONGTEXT with a json_valid
	// check): their text is embedded as JSON.
	JSON bool
	// Members are the ENUM or SET values, in definition order.
	Members []string
	// Bits is the width of a BIT column.
	Bits int
	// FixedLen pads BINARY(n) values to n bytes (the binlog drops the
	// trailing zero bytes). 0: no padding.
	FixedLen int
}

// TableMap maps a table id of the following rows events to a table.
type TableMap struct {
	TableID uint64
	Schema  string
	Table   string
	Columns []Column
	// HasNames is true when the event carried the column names
	// (binlog_row_metadata = FULL).
	HasNames bool
	// HasSignedness is true when it carried the signedness of numeric
	// columns (binlog_row_metadata = MINIMAL or FULL).
	HasSignedness bool
}

// Optional metadata field types (binlog_row_metadata).
const (
	metaSignedness   = 1
	metaColumnName   = 4
	metaSetStrValue  = 5
	metaEnumStrValue = 6
)

// ParseTableMap reads a TABLE_MAP event.
func (d *Decoder) ParseTableMap(body []byte) (*TableMap, error) {
	r := reader{b: body}
	tm := &TableMap{}
	if d.Format.postHeaderLen(TableMapEvent, 8) == 6 {
		tm.TableID = uint64(r.u32("table id"))
	} else {
		tm.TableID = r.u48("table id")
	}
	r.skip(2, "flags")
	tm.Schema = string(r.bytes(int(r.u8("schema length")), "schema"))
	r.skip(1, "schema terminator")
	tm.Table = string(r.bytes(int(r.u8("table length")), "table"))
	r.skip(1, "table terminator")
	n, _ := r.lenenc("column count")
	if r.err != nil {
		return nil, fmt.Errorf("table map: %w", r.err)
	}
	if n > uint64(r.left()) || n > 4096 {
		return nil, malformed("table map: %d columns", n)
	}
	types := r.bytes(int(n), "column types")
	meta, _ := r.lenencBytes("column metadata")
	nulls := r.bytes(int(n+7)/8, "null bitmap")
	if r.err != nil {
		return nil, fmt.Errorf("table map %s.%s: %w", tm.Schema, tm.Table, r.err)
	}
	tm.Columns = make([]Column, n)
	mr := reader{b: meta}
	for i := range tm.Columns {
		c := &tm.Columns[i]
		c.Type = ColumnType(types[i])
		c.Nullable = nulls[i/8]&(1<<(i%8)) != 0
		switch c.Type {
		case TypeFloat, TypeDouble, TypeBlob, TypeGeometry, TypeJSON,
			TypeTimestamp2, TypeDateTime2, TypeTime2, TypeTinyBlob, TypeMediumBlob, TypeLongBlob:
			c.Meta = uint16(mr.u8("column metadata"))
		case TypeVarchar, TypeVarString:
			c.Meta = mr.u16("column metadata")
		case TypeBit:
			bits := mr.u8("bit metadata")
			bytes := mr.u8("bit metadata")
			c.Meta = uint16(bytes)<<8 | uint16(bits)
			c.Bits = int(bytes)*8 + int(bits)
		case TypeNewDecimal:
			p := mr.u8("decimal precision")
			s := mr.u8("decimal scale")
			c.Meta = uint16(p)<<8 | uint16(s)
		case TypeString, TypeEnum, TypeSet:
			b0 := mr.u8("string metadata")
			b1 := mr.u8("string metadata")
			real, length := stringMeta(b0, b1)
			switch ColumnType(real) {
			case TypeEnum, TypeSet:
				c.Type = ColumnType(real)
			}
			c.Meta = length
			if c.Type != TypeString {
				c.Meta = uint16(b1) // the pack length: 1 or 2 (enum), 1-8 (set)
			}
		}
	}
	if mr.err != nil {
		return nil, fmt.Errorf("table map %s.%s: %w", tm.Schema, tm.Table, mr.err)
	}
	if err := tm.parseOptional(r.rest()); err != nil {
		return nil, fmt.Errorf("table map %s.%s: %w", tm.Schema, tm.Table, err)
	}
	return tm, nil
}

// stringMeta unwraps the metadata of a STRING column: the real type (CHAR,
// ENUM, SET) and the maximum byte length, whose high bits MySQL folds into
// the type byte for CHAR columns longer than 255 bytes.
func stringMeta(b0, b1 uint8) (real uint8, length uint16) {
	if b0&0x30 != 0x30 {
		return b0 | 0x30, uint16(b1) | uint16((b0&0x30)^0x30)<<4
	}
	return b0, uint16(b1)
}

func isNumeric(t ColumnType) bool {
	switch t {
	case TypeTiny, TypeShort, TypeInt24, TypeLong, TypeLongLong, TypeNewDecimal, TypeFloat, TypeDouble, TypeDecimal:
		return true
	}
	return false
}

// parseOptional reads the optional metadata fields (binlog_row_metadata)
// that follow the null bitmap: signedness, names, enum and set members.
func (tm *TableMap) parseOptional(b []byte) error {
	r := reader{b: b}
	for r.left() > 0 && r.err == nil {
		typ := r.u8("optional metadata type")
		val, _ := r.lenencBytes("optional metadata")
		if r.err != nil {
			break
		}
		vr := reader{b: val}
		switch typ {
		case metaSignedness:
			k := 0
			for i := range tm.Columns {
				c := &tm.Columns[i]
				if !isNumeric(c.Type) {
					continue
				}
				if k/8 < len(val) {
					c.Unsigned = val[k/8]&(0x80>>(k%8)) != 0
				}
				k++
			}
			tm.HasSignedness = true
		case metaColumnName:
			for i := range tm.Columns {
				name, _ := vr.lenencBytes("column name")
				tm.Columns[i].Name = string(name)
			}
			if vr.err != nil {
				return vr.err
			}
			tm.HasNames = true
		case metaEnumStrValue, metaSetStrValue:
			want := TypeEnum
			if typ == metaSetStrValue {
				want = TypeSet
			}
			for i := range tm.Columns {
				c := &tm.Columns[i]
				if c.Type != want {
					continue
				}
				n, _ := vr.lenenc("member count")
				if n > uint64(vr.left()) {
					return malformed("optional metadata: %d members in %d bytes", n, vr.left())
				}
				c.Members = make([]string, 0, n)
				for range n {
					m, _ := vr.lenencBytes("member")
					c.Members = append(c.Members, string(m))
				}
			}
			if vr.err != nil {
				return vr.err
			}
		}
	}
	return r.err
}

// RowsKind says what a rows event does.
type RowsKind uint8

// Kinds of rows events.
const (
	Insert RowsKind = iota + 1
	Update
	Delete
)

// Rows flags.
const (
	// RowsStmtEnd marks the last rows event of a statement: table maps
	// are forgotten after it.
	RowsStmtEnd = 1
)

// RowsEvent is a write, update or delete rows event. Its rows are read with
// NextImage, in order; an update's rows come as before then after images.
type RowsEvent struct {
	Kind    RowsKind
	TableID uint64
	Flags   uint16
	NCols   int
	// Present says which columns each (before) image holds; with a
	// minimal row image a delete's or an update's before image holds the
	// key only.
	Present []byte
	// PresentAfter is, for an update, which columns the after image holds.
	PresentAfter []byte
	rows         reader
}

// ParseRows reads the header of a rows event; its rows stay in body, which
// must outlive the reading of the images.
func (d *Decoder) ParseRows(h Header, body []byte, ev *RowsEvent) error {
	*ev = RowsEvent{}
	var v2 bool
	switch h.Type {
	case WriteRowsEventV1, WriteRowsEventV2:
		ev.Kind = Insert
	case UpdateRowsEventV1, UpdateRowsEventV2:
		ev.Kind = Update
	case DeleteRowsEventV1, DeleteRowsEventV2:
		ev.Kind = Delete
	default:
		return fmt.Errorf("%s is not a rows event", h.Type)
	}
	v2 = h.Type >= WriteRowsEventV2 && h.Type <= DeleteRowsEventV2
	r := reader{b: body}
	phl := d.Format.postHeaderLen(h.Type, 8)
	if phl == 6 {
		ev.TableID = uint64(r.u32("table id"))
	} else {
		ev.TableID = r.u48("table id")
	}
	ev.Flags = r.u16("rows flags")
	if v2 && phl == 10 {
		extra := int(r.u16("extra data length"))
		if extra < 2 {
			return malformed("rows event: extra data length %d", extra)
		}
		r.skip(extra-2, "extra data")
	}
	n, _ := r.lenenc("column count")
	if r.err == nil && (n > uint64(r.left())*8 || n > 4096) {
		return malformed("rows event: %d columns", n)
	}
	ev.NCols = int(n)
	ev.Present = r.bytes((ev.NCols+7)/8, "columns present")
	if ev.Kind == Update {
		ev.PresentAfter = r.bytes((ev.NCols+7)/8, "columns present after")
	}
	if r.err != nil {
		return fmt.Errorf("rows event: %w", r.err)
	}
	ev.rows = reader{b: r.rest()}
	return nil
}

// More reports whether another image follows.
func (ev *RowsEvent) More() bool { return ev.rows.left() > 0 && ev.rows.err == nil }

// Cell is one column of a row image.
type Cell struct {
	Present bool   // the image holds the column
	Null    bool   // its value is NULL
	Raw     []byte // the value's bytes as the binlog stores them
}

// NextImage reads the next image into cells (one per column of tm, reused
// from the caller). after selects the after-image column set of an update.
func (ev *RowsEvent) NextImage(tm *TableMap, after bool, cells []Cell) error {
	if err := ev.checkColumns(tm); err != nil {
		return err
	}
	if len(cells) < ev.NCols {
		ev.stop()
		return fmt.Errorf("NextImage: %d cells for %d columns", len(cells), ev.NCols)
	}
	return ev.image(tm, after, cells)
}

// SkipImage passes over the next image as NextImage would read it, with the
// same checks, without handing out its values: for counting rows.
func (ev *RowsEvent) SkipImage(tm *TableMap, after bool) error {
	if err := ev.checkColumns(tm); err != nil {
		return err
	}
	return ev.image(tm, after, nil)
}

func (ev *RowsEvent) checkColumns(tm *TableMap) error {
	if len(tm.Columns) != ev.NCols {
		ev.stop()
		return fmt.Errorf("rows event for %s.%s has %d columns, its table map %d", tm.Schema, tm.Table, ev.NCols, len(tm.Columns))
	}
	return nil
}

// stop ends the reading of the event's images after a call that read none:
// More is false from then on.
func (ev *RowsEvent) stop() {
	if ev.rows.err == nil {
		ev.rows.err = malformed("rows event: image not read")
	}
}

// image reads the next image, into cells unless cells is nil.
func (ev *RowsEvent) image(tm *TableMap, after bool, cells []Cell) error {
	present := ev.Present
	if after {
		present = ev.PresentAfter
	}
	r := &ev.rows
	start := r.off
	count := 0
	for i := range ev.NCols {
		if present[i/8]&(1<<(i%8)) != 0 {
			count++
		}
	}
	nulls := r.bytes((count+7)/8, "row null bitmap")
	if r.err != nil {
		return fmt.Errorf("rows event for %s.%s: %w", tm.Schema, tm.Table, r.err)
	}
	k := 0
	for i := range ev.NCols {
		if present[i/8]&(1<<(i%8)) == 0 {
			if cells != nil {
				cells[i] = Cell{}
			}
			continue
		}
		null := nulls[k/8]&(1<<(k%8)) != 0
		k++
		if null {
			if cells != nil {
				cells[i] = Cell{Present: true, Null: true}
			}
			continue
		}
		col := &tm.Columns[i]
		n, err := valueLen(col, r.b[r.off:])
		if err != nil {
			r.err = err
			return fmt.Errorf("rows event for %s.%s, column %d: %w", tm.Schema, tm.Table, i+1, err)
		}
		raw := r.bytes(n, "row value")
		if r.err != nil {
			return fmt.Errorf("rows event for %s.%s, column %d: %w", tm.Schema, tm.Table, i+1, r.err)
		}
		if cells != nil {
			cells[i] = Cell{Present: true, Raw: raw}
		}
	}
	if r.off == start {
		// An empty image would never end the event.
		r.err = malformed("rows event for %s.%s: an image with no columns", tm.Schema, tm.Table)
	}
	return nil
}
