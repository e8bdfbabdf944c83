package kafka

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
)

// CloudEvents attributes of a Kafka-sourced event.
const (
	// EventType is the `type` of every event this source emits.
	EventType = "sluice.kafka.record"
	// DataContentType is the `datacontenttype` of every event: data is
	// always a JSON object.
	DataContentType = "application/json; charset=utf-8"
)

// topicMeta holds the per-topic pieces of the envelope, escaped once.
type topicMeta struct {
	topic string
	head  []byte // {"specversion":"1.0","id":"<topic>-
	mid   []byte // ","source":"kafka://<broker>/<topic>",...,"time":"
	data  []byte // ","data":{"topic":"<topic>","partition":
}

// encoder builds events with appends only: no encoding/json, no maps, no
// allocation beyond growing the destination.
type encoder struct {
	broker      []byte // first bootstrap broker, JSON-escaped
	valueFormat string
	keyFormat   string
	topics      map[string]*topicMeta

	// Records of a poll carry close timestamps: the clock keeps the text
	// of the last second and formats only the milliseconds per record,
	// which takes a quarter off the encode.
	clock eventenc.Clock
}

func newEncoder(firstBroker, valueFormat, keyFormat string) *encoder {
	return &encoder{
		broker:      eventenc.AppendText(nil, []byte(firstBroker)),
		valueFormat: valueFormat,
		keyFormat:   keyFormat,
		topics:      map[string]*topicMeta{},
	}
}

// meta returns the cached envelope pieces of topic. Not safe for concurrent
// use; the source calls it from Read only.
func (e *encoder) meta(topic string) *topicMeta {
	if m, ok := e.topics[topic]; ok {
		return m
	}
	et := eventenc.AppendText(nil, []byte(topic))
	m := &topicMeta{topic: topic}
	m.head = append(append([]byte(`{"specversion":"1.0","id":"`), et...), '-')
	m.mid = append(m.mid, `","source":"kafka://`...)
	m.mid = append(m.mid, e.broker...)
	m.mid = append(m.mid, '/')
	m.mid = append(m.mid, et...)
	m.mid = append(m.mid, `","type":"`+EventType+`","subject":"`...)
	m.mid = append(m.mid, et...)
	m.mid = append(m.mid, `","datacontenttype":"`+DataContentType+`","time":"`...)
	m.data = append(append([]byte(`","data":{"topic":"`), et...), `","partition":`...)
	e.topics[topic] = m
	return m
}

// sizeHint estimates the event size of r, to size a batch's buffer once.
// It is never below minSize.
func (e *encoder) sizeHint(m *topicMeta, r *kgo.Record) int {
	n := len(m.head) + len(m.mid) + len(m.data) + 120 + len(r.Key) + len(r.Value)
	if e.valueFormat == FormatBase64 {
		n += len(r.Value)/3 + 4
	}
	if e.keyFormat == FormatBase64 {
		n += len(r.Key)/3 + 4
	}
	for i := range r.Headers {
		n += len(r.Headers[i].Key) + len(r.Headers[i].Value) + 8
	}
	return n
}

// minSize is a lower bound of the event size of r, cheap to compute:
// escaping only lengthens text, and Base64 takes 4 bytes for 3. A JSON
// value is embedded without the whitespace around it, which a value of
// megabytes of spaces around "1" would otherwise count.
func (e *encoder) minSize(m *topicMeta, r *kgo.Record) int {
	n := len(m.head) + len(m.mid) + len(m.data)
	if e.keyFormat == FormatBase64 {
		n += base64.StdEncoding.EncodedLen(len(r.Key))
	} else {
		n += len(r.Key)
	}
	switch e.valueFormat {
	case FormatBase64:
		n += base64.StdEncoding.EncodedLen(len(r.Value))
	case FormatJSON:
		n += len(bytes.Trim(r.Value, " \t\r\n"))
	default:
		n += len(r.Value)
	}
	for i := range r.Headers {
		n += len(r.Headers[i].Value) // a repeated name is written once
	}
	return n
}

// appendEvent appends the CloudEvent of r (docs/kafka.md, "The event":
// Alibaba's Kafka event with Sluice's choices) to dst. nonJSON reports a value that
// value_format = "json" could not parse and kept as a string.
func (e *encoder) appendEvent(dst []byte, m *topicMeta, r *kgo.Record) (out []byte, nonJSON bool) {
	ms := r.Timestamp.UnixMilli()
	dst = append(dst, m.head...)
	dst = strconv.AppendInt(dst, int64(r.Partition), 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, m.mid...)
	dst = e.clock.AppendMillis(dst, ms)
	dst = append(dst, m.data...)
	dst = strconv.AppendInt(dst, int64(r.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	dst = append(dst, `,"headers":{`...)
	dst = appendHeaders(dst, r.Headers)
	dst = append(dst, '}')
	if r.Key != nil {
		dst = append(dst, `,"key":"`...)
		if e.keyFormat == FormatBase64 {
			dst = base64.StdEncoding.AppendEncode(dst, r.Key)
		} else {
			dst = eventenc.AppendText(dst, r.Key)
		}
		dst = append(dst, '"')
	}
	dst = append(dst, `,"value":`...)
	switch {
	case r.Value == nil:
		dst = append(dst, "null"...) // a tombstone
	case e.valueFormat == FormatBase64:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, r.Value)
		dst = append(dst, '"')
	case e.valueFormat == FormatJSON:
		if v, ok := eventenc.JSONValue(r.Value); ok {
			dst = append(dst, v...)
			break
		}
		nonJSON = true
		fallthrough
	default:
		dst = append(dst, '"')
		dst = eventenc.AppendText(dst, r.Value)
		dst = append(dst, '"')
	}
	return append(dst, "}}"...), nonJSON
}

// fewHeaders is the number of headers up to which appendHeaders groups
// names by scanning the record (quadratic, no allocation). The producer
// chooses the count: past it, names are grouped through a map, or a record
// of 40,000 headers would stall the source for seconds (hours for a few
// million, which fit a compressed batch).
const fewHeaders = 32

// appendHeaders writes headers as JSON members: each name once, in order of
// first appearance; a name that repeats becomes an array of its values.
// Names are grouped as the event shows them, with each byte that is not
// UTF-8 repaired to U+FFFD: "\xff" and "\xfe" are the same name there, and
// two members of that name would leave one of the values to whichever a
// JSON reader keeps. Up to fewHeaders, names are grouped by scanning the
// record for each.
func appendHeaders(dst []byte, hs []kgo.RecordHeader) []byte {
	if len(hs) > fewHeaders {
		if !validNames(hs) {
			hs = repairNames(hs)
		}
		return appendManyHeaders(dst, hs)
	}
	start := len(dst)
	first := true
	for i := range hs {
		k := hs[i].Key
		dup := false
		for j := 0; j < i; j++ {
			if hs[j].Key == k {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		n := 1
		for j := i + 1; j < len(hs); j++ {
			if hs[j].Key == k {
				n++
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		at := len(dst)
		dst = eventenc.AppendText(dst, []byte(k))
		// Checking the names first would cost a few percent of the
		// event on the common path. Writing them tells instead: a byte
		// that is not UTF-8 is written as 6 (\ufffd), so a name written
		// at its length is valid; any other is checked, and a name to
		// repair among several headers starts the grouping over on the
		// repaired names (which are valid: this happens once).
		if len(dst)-at != len(k) && len(hs) > 1 && !utf8.ValidString(k) {
			return appendHeaders(dst[:start], repairNames(hs))
		}
		dst = append(dst, `":`...)
		if n == 1 {
			dst = eventenc.AppendQuoted(dst, hs[i].Value)
			continue
		}
		dst = append(dst, '[')
		for j := i; j < len(hs); j++ {
			if hs[j].Key != k {
				continue
			}
			if j > i {
				dst = append(dst, ',')
			}
			dst = eventenc.AppendQuoted(dst, hs[j].Value)
		}
		dst = append(dst, ']')
	}
	return dst
}

// validNames reports whether every header name is UTF-8.
func validNames(hs []kgo.RecordHeader) bool {
	for i := range hs {
		if !utf8.ValidString(hs[i].Key) {
			return false
		}
	}
	return true
}

// repairNames returns a copy of hs whose names have each byte that is not
// UTF-8 replaced by U+FFFD, as eventenc.AppendText writes them.
func repairNames(hs []kgo.RecordHeader) []kgo.RecordHeader {
	out := slices.Clone(hs)
	var b []byte
	for i := range out {
		k := out[i].Key
		if utf8.ValidString(k) {
			continue
		}
		b = b[:0]
		for len(k) > 0 {
			r, size := utf8.DecodeRuneInString(k)
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, k[:size]...)
			}
			k = k[size:]
		}
		out[i].Key = string(b)
	}
	return out
}

// appendManyHeaders is appendHeaders in linear time.
func appendManyHeaders(dst []byte, hs []kgo.RecordHeader) []byte {
	return eventenc.AppendGrouped(dst, len(hs), func(i int) string { return hs[i].Key },
		func(dst []byte, i int) []byte { return eventenc.AppendQuoted(dst, hs[i].Value) })
}
