package redis

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/runtime/message"
)

// EventType is the `type` of every event this source emits.
const EventType = "sluice.redis.entry"

// entry is one stream entry: its id and its fields as name, value pairs in
// the order Redis keeps them.
type entry struct {
	id     string
	idArg  any // the id as the reply held it, to send back (XACK, XCLAIM)
	fields []string
}

// batchData is an encoded batch.
type batchData struct {
	msgs []message.Message
	buf  []byte // the events' bytes
}

// encoder builds events with appends only. Not safe for concurrent use;
// the fetch loop calls it.
type encoder struct {
	stream      string
	head        []byte // {"specversion":"1.0","id":"<stream>-
	mid         []byte // ","source":"redis://<addr>/<db>/<stream>",...,"time":"
	data        []byte // ","data":{"stream":"<stream>","id":"
	valueFormat string
	maxEvent    int
	clock       eventenc.Clock
}

func newEncoder(addr string, db int, stream, valueFormat string, maxEvent int) *encoder {
	es := eventenc.AppendText(nil, []byte(stream))
	e := &encoder{stream: stream, valueFormat: valueFormat, maxEvent: maxEvent}
	e.head = append(append([]byte(`{"specversion":"1.0","id":"`), es...), '-')
	e.mid = append(e.mid, `","source":"redis://`...)
	e.mid = eventenc.AppendText(e.mid, []byte(addr))
	e.mid = append(e.mid, '/')
	e.mid = strconv.AppendInt(e.mid, int64(db), 10)
	e.mid = append(e.mid, '/')
	e.mid = append(e.mid, es...)
	e.mid = append(e.mid, `","type":"`+EventType+`","datacontenttype":"`+eventenc.DataContentType+`","subject":"`...)
	e.mid = append(e.mid, es...)
	e.mid = append(e.mid, `","time":"`...)
	e.data = append(append([]byte(`","data":{"stream":"`), es...), `","id":"`...)
	return e
}

// encode builds the batch's events in one buffer.
func (e *encoder) encode(es []entry) batchData {
	return e.encodeInto(es, batchData{})
}

// encodeInto is encode reusing into's memory (a batch already handled)
// when it is large enough.
func (e *encoder) encodeInto(es []entry, into batchData) batchData {
	size := 0
	for i := range es {
		size += len(e.head) + len(e.mid) + len(e.data) + 96 + 2*len(es[i].id)
		for _, f := range es[i].fields {
			size += len(f) + 4
			if e.valueFormat == eventenc.FormatBase64 {
				size += len(f)/3 + 2
			}
		}
	}
	buf := into.buf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size+size/4)
	}
	msgs := into.msgs[:0]
	if cap(msgs) < len(es) {
		msgs = make([]message.Message, len(es))
	}
	msgs = msgs[:len(es)]
	for i := range es {
		start := len(buf)
		en := &es[i]
		ms, seq, ok := parseID(en.id)
		buf = append(buf, e.head...)
		buf = eventenc.AppendText(buf, []byte(en.id)) // ids come from Redis: escaping is a safety net
		buf = append(buf, e.mid...)
		// An id's milliseconds are 64 bits unsigned: past MaxInt64 they
		// would wrap to a time before 1970 instead of being out of range.
		buf = e.clock.AppendMillis(buf, int64(min(ms, math.MaxInt64)))
		buf = append(buf, e.data...)
		buf = eventenc.AppendText(buf, []byte(en.id))
		buf = append(buf, `","fields":{`...)
		buf = e.appendFields(buf, en.fields)
		buf = append(buf, "}}}"...)
		m := &msgs[i]
		m.Payload = buf[start:len(buf):len(buf)]
		m.Event = m.Payload
		m.Time = time.UnixMilli(int64(ms))
		m.Pos = message.Position{Stream: e.stream, Offset: int64(ms)*1_000_000 + int64(min(seq, 999_999))}
		switch {
		case !ok:
			m.Err = fmt.Errorf("stream %q: entry id %q is not of the form <milliseconds>-<sequence>", e.stream, en.id)
		case e.maxEvent > 0 && len(m.Payload) > e.maxEvent:
			m.Err = fmt.Errorf("event of %d bytes from stream %q entry %s exceeds the %d-byte event limit (max_event_size)", len(m.Payload), e.stream, en.id, e.maxEvent)
		}
	}
	return batchData{msgs: msgs, buf: buf}
}

// fewFields is the number of fields up to which appendFields groups names
// by scanning the entry (quadratic, no allocation); past it a producer's
// entry of a million fields would stall the source for hours, so names are
// grouped through a map.
const fewFields = 32

// appendFields writes the entry's fields as JSON members, in entry order:
// each name once; a name that repeats maps to an array of its values.
func (e *encoder) appendFields(dst []byte, fs []string) []byte {
	if len(fs)/2 > fewFields {
		return e.appendManyFields(dst, fs)
	}
	return e.appendFewFields(dst, fs)
}

// appendFewFields is appendFields by scanning the entry for each name.
func (e *encoder) appendFewFields(dst []byte, fs []string) []byte {
	first := true
	for i := 0; i+1 < len(fs); i += 2 {
		name := fs[i]
		dup := false
		for j := 0; j < i; j += 2 {
			if fs[j] == name {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		n := 1
		for j := i + 2; j+1 < len(fs); j += 2 {
			if fs[j] == name {
				n++
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = eventenc.AppendString(dst, name)
		dst = append(dst, ':')
		if n == 1 {
			dst = e.appendValue(dst, fs[i+1])
			continue
		}
		dst = append(dst, '[')
		for j := i; j+1 < len(fs); j += 2 {
			if fs[j] != name {
				continue
			}
			if j > i {
				dst = append(dst, ',')
			}
			dst = e.appendValue(dst, fs[j+1])
		}
		dst = append(dst, ']')
	}
	return dst
}

// appendManyFields is appendFields in linear time.
func (e *encoder) appendManyFields(dst []byte, fs []string) []byte {
	return eventenc.AppendGrouped(dst, len(fs)/2, func(k int) string { return fs[2*k] },
		func(dst []byte, k int) []byte { return e.appendValue(dst, fs[2*k+1]) })
}

func (e *encoder) appendValue(dst []byte, v string) []byte {
	switch e.valueFormat {
	case eventenc.FormatBase64:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, []byte(v))
		return append(dst, '"')
	case eventenc.FormatJSON:
		if j, ok := eventenc.JSONValue([]byte(v)); ok {
			return append(dst, j...)
		}
	}
	return eventenc.AppendString(dst, v)
}

// parseID splits a stream id "ms-seq".
func parseID(id string) (ms, seq uint64, ok bool) {
	i := 0
	for i < len(id) && id[i] != '-' {
		i++
	}
	if i == 0 || i >= len(id)-1 {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(id[:i], 10, 64)
	seq, err2 := strconv.ParseUint(id[i+1:], 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// Replies are redigo's: an array is a []any, a bulk string a []byte (a
// fresh one per reply, never changed afterwards: text reads it in place),
// a missing value nil.

// text returns v, a bulk or status string, as a string sharing its bytes.
func text(v any) (string, bool) {
	switch v := v.(type) {
	case []byte:
		return unsafe.String(unsafe.SliceData(v), len(v)), true
	case string:
		return v, true
	}
	return "", false
}

// parseRead parses an XREADGROUP reply (RESP2: [[stream, [[id, [f, v, ...]], ...]]],
// nil when BLOCK ran out). Pending entries no longer in the stream come
// back with no fields; their ids are returned apart.
func parseRead(v any) ([]entry, []string, error) {
	if v == nil {
		return nil, nil, nil
	}
	streams, ok := v.([]any)
	if !ok {
		return nil, nil, fmt.Errorf("unexpected XREADGROUP reply %T", v)
	}
	var es []entry
	var deleted []string
	for _, st := range streams {
		pair, ok := st.([]any)
		if !ok || len(pair) != 2 {
			return nil, nil, fmt.Errorf("unexpected XREADGROUP stream reply %v", st)
		}
		items, ok := pair[1].([]any)
		if !ok {
			return nil, nil, fmt.Errorf("unexpected XREADGROUP entries %T", pair[1])
		}
		var err error
		es, deleted, err = appendEntries(es, deleted, items)
		if err != nil {
			return nil, nil, err
		}
	}
	return es, deleted, nil
}

// parseClaim parses an XAUTOCLAIM reply: [cursor, entries, deleted ids]
// (Redis 7; 6.2 has no deleted list and returns such entries with no fields).
func parseClaim(v any) ([]entry, []string, string, error) {
	parts, ok := v.([]any)
	if !ok || len(parts) < 2 {
		return nil, nil, "0-0", fmt.Errorf("unexpected XAUTOCLAIM reply %v", v)
	}
	cursor, _ := text(parts[0])
	items, ok := parts[1].([]any)
	if !ok {
		return nil, nil, "0-0", fmt.Errorf("unexpected XAUTOCLAIM entries %T", parts[1])
	}
	es, deleted, err := appendEntries(nil, nil, items)
	if err != nil {
		return nil, nil, "0-0", err
	}
	if len(parts) > 2 {
		if ids, ok := parts[2].([]any); ok {
			for _, id := range ids {
				if s, ok := text(id); ok {
					deleted = append(deleted, s)
				}
			}
		}
	}
	if cursor == "" {
		cursor = "0-0"
	}
	return es, deleted, cursor, nil
}

func appendEntries(es []entry, deleted []string, items []any) ([]entry, []string, error) {
	// One slice for every entry's fields, and room for every entry, rather
	// than an allocation per entry and a slice grown entry by entry.
	es = slices.Grow(es, len(items))
	total := 0
	for _, it := range items {
		if e, ok := it.([]any); ok && len(e) == 2 {
			if kv, ok := e[1].([]any); ok {
				total += len(kv)
			}
		}
	}
	slab := make([]string, total)
	for _, it := range items {
		e, ok := it.([]any)
		if !ok || len(e) != 2 {
			return nil, nil, fmt.Errorf("unexpected stream entry %v", it)
		}
		id, ok := text(e[0])
		if !ok {
			return nil, nil, fmt.Errorf("unexpected stream entry id %v", e[0])
		}
		if e[1] == nil {
			deleted = append(deleted, id)
			continue
		}
		kv, ok := e[1].([]any)
		if !ok {
			return nil, nil, fmt.Errorf("unexpected fields of entry %s: %T", id, e[1])
		}
		fs := slab[:len(kv):len(kv)]
		slab = slab[len(kv):]
		for i, x := range kv {
			if s, ok := text(x); ok {
				fs[i] = s
			} else if x != nil {
				fs[i] = fmt.Sprint(x)
			}
		}
		es = append(es, entry{id: id, idArg: e[0], fields: fs})
	}
	return es, deleted, nil
}

// groupNames returns the group names of an XINFO GROUPS reply: one array
// per group, of name, value pairs.
func groupNames(v any) ([]string, error) {
	groups, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected XINFO GROUPS reply %T", v)
	}
	var names []string
	for _, g := range groups {
		kv, _ := g.([]any)
		for i := 0; i+1 < len(kv); i += 2 {
			if k, _ := text(kv[i]); k == "name" {
				if n, ok := text(kv[i+1]); ok {
					names = append(names, n)
				}
			}
		}
	}
	return names, nil
}
