package nats

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/builtins/internal/cejson"
	"github.com/sluicehq/sluice/runtime/message"
)

// EventType is the `type` of every event this source emits.
const EventType = "sluice.nats.message"

// encoder builds events with appends only. Not safe for concurrent use;
// the source calls it from Read only.
type encoder struct {
	stream      string
	head        []byte // {"specversion":"1.0","id":"<stream>-0-
	mid         []byte // ","source":"nats://<host>/<stream>","type":"...","subject":"
	data        []byte // ,"data":{"stream":"<stream>","subject":
	valueFormat string
	maxEvent    int
	clock       cejson.Clock
	keys        []string // scratch for sorting header names
}

func newEncoder(host, stream, valueFormat string, maxEvent int) *encoder {
	es := cejson.AppendText(nil, []byte(stream))
	e := &encoder{stream: stream, valueFormat: valueFormat, maxEvent: maxEvent}
	e.head = append(append([]byte(`{"specversion":"1.0","id":"`), es...), "-0-"...)
	e.mid = append(e.mid, `","source":"nats://`...)
	e.mid = cejson.AppendText(e.mid, []byte(host))
	e.mid = append(e.mid, '/')
	e.mid = append(e.mid, es...)
	e.mid = append(e.mid, `","type":"`+EventType+`","datacontenttype":"`+cejson.DataContentType+`","subject":`...)
	e.data = append(append([]byte(`,"data":{"stream":"`), es...), `","subject":`...)
	return e
}

// sizeHint estimates the event size of m, to size a batch's buffer once.
func (e *encoder) sizeHint(m jetstream.Msg) int {
	n := len(e.head) + len(e.mid) + len(e.data) + 200 + 3*len(m.Subject()) + len(m.Data())
	if e.valueFormat == cejson.FormatBase64 {
		n += len(m.Data())/3 + 4
	}
	for k, vs := range m.Headers() {
		for _, v := range vs {
			n += len(k) + len(v) + 8
		}
	}
	return n
}

// appendMessage appends the CloudEvent of m to buf and fills out. It
// returns the message's metadata, or nil when the message carries none
// (then out is a decode error, sent to the dead-letter path).
func (e *encoder) appendMessage(buf []byte, out *message.Message, m jetstream.Msg) ([]byte, *jetstream.MsgMetadata) {
	start := len(buf)
	subject := m.Subject()
	md, err := m.Metadata()
	if err != nil {
		buf = append(buf, m.Data()...)
		out.Payload = buf[start:len(buf):len(buf)]
		out.Event = out.Payload
		out.Key = []byte(subject)
		out.Pos = message.Position{Stream: e.stream}
		out.Err = fmt.Errorf("message on subject %q carries no JetStream metadata: %w", subject, err)
		return buf, nil
	}
	ms := md.Timestamp.UnixMilli()
	buf = append(buf, e.head...)
	buf = strconv.AppendUint(buf, md.Sequence.Stream, 10)
	buf = append(buf, e.mid...)
	buf = cejson.AppendString(buf, subject)
	buf = append(buf, `,"time":"`...)
	buf = e.clock.AppendMillis(buf, ms)
	buf = append(buf, '"')
	buf = append(buf, e.data...)
	keyStart := len(buf) + 1
	buf = cejson.AppendString(buf, subject)
	keyEnd := len(buf) - 1
	buf = append(buf, `,"sequence":`...)
	buf = strconv.AppendUint(buf, md.Sequence.Stream, 10)
	buf = append(buf, `,"timestamp":`...)
	buf = strconv.AppendInt(buf, ms, 10)
	hdrs := m.Headers()
	var headers []message.Header
	if len(hdrs) > 0 {
		buf = append(buf, `,"headers":{`...)
		buf, headers = e.appendHeaders(buf, hdrs)
		buf = append(buf, '}')
	}
	buf = append(buf, `,"value":`...)
	data := m.Data()
	switch e.valueFormat {
	case cejson.FormatBase64:
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, data)
		buf = append(buf, '"')
	case cejson.FormatJSON:
		if v, ok := cejson.JSONValue(data); ok {
			buf = append(buf, v...)
			break
		}
		buf = cejson.AppendQuoted(buf, data)
	default:
		buf = cejson.AppendQuoted(buf, data)
	}
	buf = append(buf, "}}"...)
	out.Payload = buf[start:len(buf):len(buf)]
	out.Event = out.Payload
	if keyEnd-keyStart == len(subject) {
		// The subject needed no escaping: the key points into the event.
		out.Key = buf[keyStart:keyEnd:keyEnd]
	} else {
		out.Key = []byte(subject)
	}
	out.Headers = headers
	out.Time = md.Timestamp
	out.Pos = message.Position{Stream: e.stream, Offset: int64(md.Sequence.Stream)}
	if e.maxEvent > 0 && len(out.Payload) > e.maxEvent {
		out.Err = fmt.Errorf("event of %d bytes from %s exceeds the %d-byte event limit (max_event_size)", len(out.Payload), out.Pos, e.maxEvent)
		out.Payload, out.Event = data, data
	}
	return buf, md
}

// appendHeaders writes the message headers as JSON members in name order
// (the client keeps them in a map): a name with one value maps to a
// string, one with several to an array. It also returns them as record
// headers, in the same order.
func (e *encoder) appendHeaders(buf []byte, h nats.Header) ([]byte, []message.Header) {
	e.keys = e.keys[:0]
	n := 0
	for k, vs := range h {
		e.keys = append(e.keys, k)
		n += len(vs)
	}
	slices.Sort(e.keys)
	out := make([]message.Header, 0, n)
	for i, k := range e.keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = cejson.AppendString(buf, k)
		buf = append(buf, ':')
		vs := h[k]
		if len(vs) == 1 {
			buf = cejson.AppendString(buf, vs[0])
		} else {
			buf = append(buf, '[')
			for j, v := range vs {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = cejson.AppendString(buf, v)
			}
			buf = append(buf, ']')
		}
		for _, v := range vs {
			out = append(out, message.Header{Key: k, Value: []byte(v)})
		}
	}
	return buf, out
}
