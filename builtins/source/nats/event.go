package nats

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
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
	clock       eventenc.Clock
	keys        []string // scratch for sorting header names
}

func newEncoder(host, stream, valueFormat string, maxEvent int) *encoder {
	es := eventenc.AppendText(nil, []byte(stream))
	e := &encoder{stream: stream, valueFormat: valueFormat, maxEvent: maxEvent}
	e.head = append(append([]byte(`{"specversion":"1.0","id":"`), es...), "-0-"...)
	e.mid = append(e.mid, `","source":"nats://`...)
	e.mid = eventenc.AppendText(e.mid, []byte(host))
	e.mid = append(e.mid, '/')
	e.mid = append(e.mid, es...)
	e.mid = append(e.mid, `","type":"`+EventType+`","datacontenttype":"`+eventenc.DataContentType+`","subject":`...)
	e.data = append(append([]byte(`,"data":{"stream":"`), es...), `","subject":`...)
	return e
}

// sizeHint estimates the event size of m, to size a batch's buffer once.
func (e *encoder) sizeHint(m jetstream.Msg) int {
	n := len(e.head) + len(e.mid) + len(e.data) + 200 + 3*len(m.Subject()) + len(m.Data())
	if e.valueFormat == eventenc.FormatBase64 {
		n += len(m.Data())/3 + 4
	}
	for k, vs := range m.Headers() {
		for _, v := range vs {
			n += len(k) + len(v) + 8
		}
	}
	return n
}

// ackMeta is what the encoder needs of a message's JetStream metadata.
type ackMeta struct {
	seq       uint64 // stream sequence
	delivered uint64 // deliveries so far, this one included
	pending   uint64 // messages of the stream not yet delivered to the consumer
	ts        int64  // the time the stream stored it, in ns since the epoch
}

// parseAck reads the metadata of a JetStream message from its reply
// subject, as the client's Metadata does, without allocating (Metadata
// allocates a struct and five strings per message, the main garbage of the
// source's hot path). The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending> (9
// tokens) or, from newer servers,
// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
// (11 tokens or more). ok is false for any other subject: the caller asks
// Metadata for the error.
func parseAck(reply string) (m ackMeta, ok bool) {
	const prefix = "$JS.ACK."
	if len(reply) <= len(prefix) || reply[:len(prefix)] != prefix {
		return m, false
	}
	rest := reply[len(prefix):]
	// Tokens after the prefix: 7 (v1) or at least 9 (v2).
	n := 1
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			n++
		}
	}
	switch {
	case n == 7:
	case n >= 9:
		// Skip the domain and the account hash.
		for range 2 {
			i := indexDot(rest)
			rest = rest[i+1:]
		}
	default:
		return m, false
	}
	// <stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
	var tok [7]string
	for i := range tok {
		j := indexDot(rest)
		if j < 0 {
			tok[i], rest = rest, ""
			continue
		}
		tok[i], rest = rest[:j], rest[j+1:]
	}
	m.delivered = parseNum(tok[2])
	m.seq = parseNum(tok[3])
	m.ts = int64(parseNum(tok[5]))
	m.pending = parseNum(tok[6])
	return m, true
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// parseNum reads a decimal token as the client does: 0 when it is empty
// or holds anything but digits.
func parseNum(d string) (n uint64) {
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// appendMessage appends the CloudEvent of m to buf and fills out. ok is
// false when the message carries no JetStream metadata (then out is a
// decode error, sent to the dead-letter path).
func (e *encoder) appendMessage(buf []byte, out *message.Message, m jetstream.Msg) ([]byte, ackMeta, bool) {
	start := len(buf)
	subject := m.Subject()
	md, ok := parseAck(m.Reply())
	if !ok {
		_, err := m.Metadata()
		if err == nil {
			err = fmt.Errorf("reply subject %q is not a JetStream acknowledgement subject", m.Reply())
		}
		buf = append(buf, m.Data()...)
		out.Payload = buf[start:len(buf):len(buf)]
		out.Event = out.Payload
		out.Key = []byte(subject)
		out.Pos = message.Position{Stream: e.stream}
		out.Err = fmt.Errorf("message on subject %q carries no JetStream metadata: %w", subject, err)
		return buf, md, false
	}
	ts := time.Unix(0, md.ts)
	ms := ts.UnixMilli()
	buf = append(buf, e.head...)
	buf = strconv.AppendUint(buf, md.seq, 10)
	buf = append(buf, e.mid...)
	buf = eventenc.AppendString(buf, subject)
	buf = append(buf, `,"time":"`...)
	buf = e.clock.AppendMillis(buf, ms)
	buf = append(buf, '"')
	buf = append(buf, e.data...)
	keyStart := len(buf) + 1
	buf = eventenc.AppendString(buf, subject)
	keyEnd := len(buf) - 1
	buf = append(buf, `,"sequence":`...)
	buf = strconv.AppendUint(buf, md.seq, 10)
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
	case eventenc.FormatBase64:
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, data)
		buf = append(buf, '"')
	case eventenc.FormatJSON:
		if v, ok := eventenc.JSONValue(data); ok {
			buf = append(buf, v...)
			break
		}
		buf = eventenc.AppendQuoted(buf, data)
	default:
		buf = eventenc.AppendQuoted(buf, data)
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
	out.Time = ts
	out.Pos = message.Position{Stream: e.stream, Offset: int64(md.seq)}
	if e.maxEvent > 0 && len(out.Payload) > e.maxEvent {
		out.Err = fmt.Errorf("event of %d bytes from %s exceeds the %d-byte event limit (max_event_size)", len(out.Payload), out.Pos, e.maxEvent)
		out.Payload, out.Event = data, data
	}
	return buf, md, true
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
		buf = eventenc.AppendString(buf, k)
		buf = append(buf, ':')
		vs := h[k]
		if len(vs) == 1 {
			buf = eventenc.AppendString(buf, vs[0])
		} else {
			buf = append(buf, '[')
			for j, v := range vs {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = eventenc.AppendString(buf, v)
			}
			buf = append(buf, ']')
		}
		for _, v := range vs {
			out = append(out, message.Header{Key: k, Value: []byte(v)})
		}
	}
	return buf, out
}
