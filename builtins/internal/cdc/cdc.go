// Package cdc writes the change events that the change data capture sources
// (postgres_cdc, mysql_cdc) emit: a CloudEvent whose data is Debezium's
// envelope,
//
//	{"op":"u","before":{...}|null,"after":{...}|null,
//	 "source":{"connector":"postgresql","db":"shop","schema":"public","table":"orders",
//	           "snapshot":false,"ts_ms":1767000000000, ...position members...},
//	 "key":{"id":42}|null}
//
// with column values typed by their column type (docs/connectors/cdc.md).
//
// Events are built with appends only, in the order they are written: no
// reflection, no maps, no encoding/json. A source describes each table once
// (NewTable), then for each change calls, on one Encoder:
//
//	dst = enc.Begin(dst, t, op, id, tsMs)  // CloudEvent attributes, "op"
//	dst = enc.NullImage(dst, cdc.Before)   // or BeginImage, then per column:
//	dst = enc.BeginImage(dst, cdc.After)
//	dst = enc.Column(dst, i)               //   "name":
//	dst = cdc.AppendInt(dst, v)            //   the value, by an Append function
//	dst = enc.EndImage(dst)
//	dst = enc.BeginSource(dst, snapshot)   // "source":{connector, db, schema, table, snapshot, ts_ms
//	dst = cdc.AppendMember(dst, "lsn")     //   the source's position members
//	dst = cdc.AppendString(dst, lsnText)
//	dst, key = enc.End(dst)                // }, "key", the closing braces
//
// The key object is copied from the last image written that is not null
// (after for c/u/r, before for d): End returns it so that the source can set
// it as the record key (order = "key").
package cdc

import (
	"strconv"
	"time"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Op is the change kind, Debezium's "op".
type Op byte

const (
	// Create is an insert.
	Create Op = 'c'
	// Update is an update.
	Update Op = 'u'
	// Delete is a delete.
	Delete Op = 'd'
	// Read is a row read by the snapshot.
	Read Op = 'r'
)

// Valid reports whether o is one of the four ops.
func (o Op) Valid() bool { return o == Create || o == Update || o == Delete || o == Read }

// Image names the row image being written.
type Image int

const (
	// Before is the row before the change (null for inserts and snapshot
	// reads; only the key columns when the database logs no more).
	Before Image = iota
	// After is the row after the change (null for deletes).
	After
)

// DataContentType is the datacontenttype of every change event.
const DataContentType = "application/json"

// Column describes one column of a table.
type Column struct {
	Name string
	// Type is the database's type name, for the docs and errors; the
	// encoder does not read it.
	Type string
}

// Table is what the encoder knows about one table, with its JSON pieces
// escaped once. It is immutable after NewTable and may be shared.
type Table struct {
	DB, Schema, Name string
	Columns          []Column
	// Key lists the indexes in Columns of the key columns (the primary
	// key, or the replica identity), in key order. Empty: no key.
	Key []int

	subject []byte   // "schema.table", escaped
	names   [][]byte // "name": per column, escaped, with quotes and colon
	srcHead []byte   // "db":"..","schema":"..","table":"..",
}

// NewTable describes a table. key holds indexes into cols.
func NewTable(db, schema, name string, cols []Column, key []int) *Table {
	t := &Table{DB: db, Schema: schema, Name: name, Columns: cols, Key: key}
	qual := name
	if schema != "" {
		qual = schema + "." + name
	}
	t.subject = jsonscan.AppendEscaped(nil, []byte(qual))
	t.names = make([][]byte, len(cols))
	for i, c := range cols {
		t.names[i] = append(jsonscan.AppendQuoted(nil, []byte(c.Name)), ':')
	}
	h := append([]byte(nil), `"db":`...)
	h = jsonscan.AppendQuoted(h, []byte(db))
	h = append(h, `,"schema":`...)
	if schema == "" {
		h = append(h, "null"...)
	} else {
		h = jsonscan.AppendQuoted(h, []byte(schema))
	}
	h = append(h, `,"table":`...)
	h = jsonscan.AppendQuoted(h, []byte(name))
	t.srcHead = h
	return t
}

// Subject returns "schema.table" (or "table" without a schema).
func (t *Table) Subject() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Options are the CloudEvent attributes shared by a source's events.
type Options struct {
	// Connector is source.connector: "postgresql", "mysql".
	Connector string
	// Source is the CloudEvents source attribute, such as
	// "postgres://db.example:5432/shop".
	Source string
	// Type is the CloudEvents type attribute, such as
	// "sluice.postgres_cdc.change".
	Type string
}

// Encoder writes change events. It is not safe for concurrent use; a
// source uses one per reading goroutine.
type Encoder struct {
	head []byte // ,"source":"…","type":"…","subject":"
	conn []byte // "source":{"connector":"…",

	t       *Table
	image   Image
	cols    int    // columns written in the current image
	cur     int    // column whose value is being written; -1: none
	spans   []span // value spans of the current image, by column
	keyFrom []span // spans of the last non-null image
	keySrc  []bool // keyFrom[i] was written
	written []bool // per column of the current image
	tsMs    int64  // the event's time
	secText []byte // cached "2006-01-02T15:04:05." of lastSec
	lastSec int64  //
	tsText  []byte // cached decimal text of tsMs for ts_ms (tsValid)
	tsOf    int64
	tsValid bool
	start   int // offset in dst where the event began
}

type span struct{ from, to int }

// NewEncoder returns an encoder for events with the attributes of o.
func NewEncoder(o Options) *Encoder {
	e := &Encoder{cur: -1}
	h := append([]byte(nil), `","source":`...)
	h = jsonscan.AppendQuoted(h, []byte(o.Source))
	h = append(h, `,"type":`...)
	h = jsonscan.AppendQuoted(h, []byte(o.Type))
	h = append(h, `,"subject":"`...)
	e.head = h
	c := append([]byte(nil), `,"source":{"connector":`...)
	c = jsonscan.AppendQuoted(c, []byte(o.Connector))
	e.conn = append(c, ',')
	return e
}

// Begin starts the event of a change to t: the CloudEvent attributes (id,
// source, type, subject = schema.table, time = tsMs, datacontenttype) and
// the envelope's op. id must be deterministic from the change's position
// so that a replay has the same ids; it is escaped here.
func (e *Encoder) Begin(dst []byte, t *Table, op Op, id []byte, tsMs int64) []byte {
	e.t = t
	e.tsMs = tsMs
	e.start = len(dst)
	e.keyFrom = e.keyFrom[:0]
	e.keySrc = e.keySrc[:0]
	dst = append(dst, `{"specversion":"1.0","id":"`...)
	dst = appendText(dst, id)
	dst = append(dst, e.head...)
	dst = append(dst, t.subject...)
	dst = append(dst, `","time":"`...)
	dst = e.appendMillis(dst, tsMs)
	dst = append(dst, `","datacontenttype":"`+DataContentType+`","data":{"op":"`...)
	return append(dst, byte(op), '"')
}

// NullImage writes image im as null (before of an insert or a snapshot
// read, after of a delete, or a before image the database did not log).
func (e *Encoder) NullImage(dst []byte, im Image) []byte {
	if im == Before {
		return append(dst, `,"before":null`...)
	}
	return append(dst, `,"after":null`...)
}

// BeginImage opens image im. Columns follow with Column and a value each;
// columns the database did not send are simply not written (they are then
// absent from the object, never invented).
func (e *Encoder) BeginImage(dst []byte, im Image) []byte {
	e.image = im
	e.cols = 0
	e.cur = -1
	n := len(e.t.Columns)
	e.spans = grow(e.spans, n)
	e.written = growBool(e.written, n)
	clear(e.written)
	if im == Before {
		return append(dst, `,"before":{`...)
	}
	return append(dst, `,"after":{`...)
}

// Column writes the name of column i; the caller appends its value next
// with one of the Append functions (or AppendNull).
func (e *Encoder) Column(dst []byte, i int) []byte {
	e.closeValue(len(dst))
	if e.cols > 0 {
		dst = append(dst, ',')
	}
	e.cols++
	dst = append(dst, e.t.names[i]...)
	e.cur = i
	e.spans[i].from = len(dst)
	return dst
}

func (e *Encoder) closeValue(at int) {
	if e.cur >= 0 {
		e.spans[e.cur].to = at
		e.written[e.cur] = true
		e.cur = -1
	}
}

// EndImage closes the image opened by BeginImage.
func (e *Encoder) EndImage(dst []byte) []byte {
	e.closeValue(len(dst))
	// This image becomes the source of the key: spans are relative to the
	// event's start so that they survive dst growing. Only the key
	// columns' entries are read (End).
	n := len(e.t.Columns)
	e.keyFrom = grow(e.keyFrom, n)
	e.keySrc = growBool(e.keySrc, n)
	for _, i := range e.t.Key {
		e.keySrc[i] = e.written[i]
		e.keyFrom[i] = span{e.spans[i].from - e.start, e.spans[i].to - e.start}
	}
	return append(dst, '}')
}

// BeginSource opens the envelope's source object with the members every
// connector has (connector, db, schema, table, snapshot, ts_ms); the
// caller appends its position members next with AppendMember and a value
// (lsn, txid for PostgreSQL; gtid, file, pos, server_id for MySQL).
func (e *Encoder) BeginSource(dst []byte, snapshot bool) []byte {
	dst = append(dst, e.conn...)
	dst = append(dst, e.t.srcHead...)
	if snapshot {
		dst = append(dst, `,"snapshot":true,"ts_ms":`...)
	} else {
		dst = append(dst, `,"snapshot":false,"ts_ms":`...)
	}
	// The changes of a transaction share their time: its text is kept.
	if !e.tsValid || e.tsOf != e.tsMs {
		e.tsText = strconv.AppendInt(e.tsText[:0], e.tsMs, 10)
		e.tsOf, e.tsValid = e.tsMs, true
	}
	return append(dst, e.tsText...)
}

// AppendMember appends `,"name":` inside an object that already has a
// member (the source object after BeginSource).
func AppendMember(dst []byte, name string) []byte {
	dst = append(dst, ',', '"')
	dst = jsonscan.AppendEscaped(dst, []byte(name))
	return append(dst, '"', ':')
}

// End closes the source object, writes the key and closes the event. key
// is the key object inside dst (nil when the table has no key or the last
// image lacks a key column), valid as long as dst's bytes are.
func (e *Encoder) End(dst []byte) (out []byte, key []byte) {
	dst = append(dst, `},"key":`...)
	if len(e.t.Key) == 0 || len(e.keySrc) < len(e.t.Columns) {
		return append(dst, "null}}"...), nil
	}
	for _, i := range e.t.Key {
		if !e.keySrc[i] {
			return append(dst, "null}}"...), nil
		}
	}
	from := len(dst)
	dst = append(dst, '{')
	for n, i := range e.t.Key {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.t.names[i]...)
		s := e.keyFrom[i]
		dst = append(dst, dst[e.start+s.from:e.start+s.to]...)
	}
	dst = append(dst, '}')
	to := len(dst)
	dst = append(dst, "}}"...)
	return dst, dst[from:to:to]
}

// appendMillis appends ms as RFC 3339 UTC with milliseconds, formatting
// only the milliseconds when the second is the last one seen.
func (e *Encoder) appendMillis(dst []byte, ms int64) []byte {
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	if e.secText == nil || sec != e.lastSec {
		e.secText = time.Unix(sec, 0).UTC().AppendFormat(e.secText[:0], "2006-01-02T15:04:05.")
		e.lastSec = sec
	}
	dst = append(dst, e.secText...)
	return append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
}

func grow(s []span, n int) []span {
	if cap(s) < n {
		return make([]span, n)
	}
	return s[:n]
}

func growBool(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}
