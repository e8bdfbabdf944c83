package postgrescdc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The pgoutput logical replication messages (protocol version 1) this
// source reads, decoded in place: values point into the message buffer,
// nothing is copied or allocated per row. pglogrepl's decoder copies every
// column byte by byte into fresh slices, which costs more than the rest of
// an event.

var errShort = errors.New("pgoutput message too short")

// pgEpoch is PostgreSQL's timestamp epoch.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// pgMillis converts microseconds since 2000-01-01 to Unix milliseconds.
func pgMillis(us int64) int64 { return (us + pgEpoch) / 1000 }

type beginMsg struct {
	finalLSN uint64 // the commit's LSN
	tsMs     int64
	xid      uint32
}

func parseBegin(b []byte) (beginMsg, error) {
	if len(b) < 20 {
		return beginMsg{}, errShort
	}
	return beginMsg{
		finalLSN: binary.BigEndian.Uint64(b),
		tsMs:     pgMillis(int64(binary.BigEndian.Uint64(b[8:]))),
		xid:      binary.BigEndian.Uint32(b[16:]),
	}, nil
}

type commitMsg struct {
	commitLSN, endLSN uint64
	tsMs              int64
}

func parseCommit(b []byte) (commitMsg, error) {
	if len(b) < 25 {
		return commitMsg{}, errShort
	}
	return commitMsg{
		commitLSN: binary.BigEndian.Uint64(b[1:]),
		endLSN:    binary.BigEndian.Uint64(b[9:]),
		tsMs:      pgMillis(int64(binary.BigEndian.Uint64(b[17:]))),
	}, nil
}

type relColumn struct {
	key    bool // part of the replica identity
	name   string
	typeID uint32
}

type relationMsg struct {
	id        uint32
	namespace string
	name      string
	replIdent byte
	cols      []relColumn
}

func cstring(b []byte) (string, []byte, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, errors.New("pgoutput: unterminated string")
	}
	return string(b[:i]), b[i+1:], nil
}

func parseRelation(b []byte) (relationMsg, error) {
	var r relationMsg
	if len(b) < 4 {
		return r, errShort
	}
	r.id = binary.BigEndian.Uint32(b)
	var err error
	if r.namespace, b, err = cstring(b[4:]); err != nil {
		return r, err
	}
	if r.name, b, err = cstring(b); err != nil {
		return r, err
	}
	if len(b) < 3 {
		return r, errShort
	}
	r.replIdent = b[0]
	n := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if n > 1664 { // PostgreSQL's column limit
		return r, fmt.Errorf("pgoutput: relation with %d columns", n)
	}
	r.cols = make([]relColumn, n)
	for i := range r.cols {
		if len(b) < 1 {
			return r, errShort
		}
		r.cols[i].key = b[0]&1 != 0
		if r.cols[i].name, b, err = cstring(b[1:]); err != nil {
			return r, err
		}
		if len(b) < 8 {
			return r, errShort
		}
		r.cols[i].typeID = binary.BigEndian.Uint32(b)
		b = b[8:]
	}
	return r, nil
}

// tupleCol is one column of a tuple: kind 'n' (null), 'u' (unchanged
// TOAST value, not sent), 't' (text) or 'b' (binary), and the data.
type tupleCol struct {
	kind byte
	data []byte
}

// parseTuple decodes TupleData into cols (reused) and returns the rest of b.
func parseTuple(b []byte, cols []tupleCol) ([]tupleCol, []byte, error) {
	if len(b) < 2 {
		return cols, nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	cols = cols[:0]
	for range n {
		if len(b) < 1 {
			return cols, nil, errShort
		}
		k := b[0]
		b = b[1:]
		switch k {
		case 'n', 'u':
			cols = append(cols, tupleCol{kind: k})
		case 't', 'b':
			if len(b) < 4 {
				return cols, nil, errShort
			}
			l := binary.BigEndian.Uint32(b)
			b = b[4:]
			if uint64(l) > uint64(len(b)) {
				return cols, nil, errShort
			}
			cols = append(cols, tupleCol{kind: k, data: b[:l]})
			b = b[l:]
		default:
			return cols, nil, fmt.Errorf("pgoutput: unknown tuple column kind %q", k)
		}
	}
	return cols, b, nil
}

// change is an insert, update or delete, decoded in place.
type change struct {
	relID  uint32
	op     byte       // 'I', 'U', 'D'
	old    byte       // 0, 'K' (key columns) or 'O' (whole old row)
	before []tupleCol // when old != 0
	after  []tupleCol // I and U
}

// parseChange decodes an 'I', 'U' or 'D' message, reusing c's slices.
func parseChange(b []byte, c *change) error {
	if len(b) < 6 {
		return errShort
	}
	c.op = b[0]
	c.relID = binary.BigEndian.Uint32(b[1:])
	c.old = 0
	c.before = c.before[:0]
	c.after = c.after[:0]
	b = b[5:]
	var err error
	if (c.op == 'U' || c.op == 'D') && (b[0] == 'K' || b[0] == 'O') {
		c.old = b[0]
		if c.before, b, err = parseTuple(b[1:], c.before); err != nil {
			return err
		}
	}
	if c.op == 'D' {
		if c.old == 0 {
			return errors.New("pgoutput: delete without old tuple")
		}
		return nil
	}
	if len(b) < 1 || b[0] != 'N' {
		return fmt.Errorf("pgoutput: %c message without a new tuple", c.op)
	}
	c.after, _, err = parseTuple(b[1:], c.after)
	return err
}
