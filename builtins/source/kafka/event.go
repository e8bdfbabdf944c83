package kafka

import (
	"encoding/base64"
	"strconv"

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
func (e *encoder) sizeHint(m *topicMeta, r *kgo.Record) int {
	n := len(m.head) + len(m.mid) + len(m.data) + 120 + len(r.Key) + len(r.Value)
	if e.valueFormat == FormatBase64 {
		n += len(r.Value)/3 + 4
	}
	for i := range r.Headers {
		n += len(r.Headers[i].Key) + len(r.Headers[i].Value) + 8
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

// appendHeaders writes headers as JSON members: each key once, in order of
// first appearance; a key that repeats becomes an array of its values.
// Header counts are small, so the quadratic scan beats building a map.
func appendHeaders(dst []byte, hs []kgo.RecordHeader) []byte {
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
		dst = eventenc.AppendText(dst, []byte(k))
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
