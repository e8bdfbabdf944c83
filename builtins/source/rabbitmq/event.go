package rabbitmq

import (
	"math"
	"sort"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/runtime/message"
)

// EventType is the CloudEvents `type` of every event this source emits.
const EventType = "sluice.rabbitmq.message"

// encoder builds events with appends only. Not safe for concurrent use; the
// source calls it from Read only.
type encoder struct {
	format string
	// head is `{"specversion":"1.0","id":"` and prefix `<queue>-<session>-`
	// is the id of a message without a message_id.
	head   []byte
	source []byte // `","source":"amqp://host/vhost/queue","type":...,"time":"`
	data   []byte // `","data":{"queue":"<queue>"`
	clock  eventenc.Clock
}

// newEncoder returns the encoder of queue's events; source is the
// CloudEvents source, "amqp://host:port/<vhost>/<queue>".
func newEncoder(source, queue, format string) *encoder {
	e := &encoder{format: format}
	eq := eventenc.AppendText(nil, []byte(queue))
	e.head = []byte(`{"specversion":"1.0","id":"`)
	e.source = append(e.source, `","source":"`...)
	e.source = eventenc.AppendText(e.source, []byte(source))
	e.source = append(e.source, `","type":"`+EventType+`","datacontenttype":"`+eventenc.DataContentType+`"`...)
	e.data = append(append([]byte(`,"data":{"queue":"`), eq...), '"')
	return e
}

// sizeHint estimates the event size of d.
func (e *encoder) sizeHint(d *amqp.Delivery) int {
	n := len(e.head) + len(e.source) + len(e.data) + 200 + 2*len(d.RoutingKey) + len(d.Exchange) + len(d.MessageId) + len(d.CorrelationId) + len(d.ContentType)
	n += eventenc.BodySize(d.Body, e.format)
	for k, v := range d.Headers {
		n += len(k) + 8
		if s, ok := v.(string); ok {
			n += len(s)
		} else {
			n += 16
		}
	}
	return n
}

// appendEvent appends the CloudEvent of d. idPrefix is `<queue>-<session>-`,
// the id of a message that carries no message_id.
func (e *encoder) appendEvent(dst []byte, d *amqp.Delivery, idPrefix []byte, now time.Time) (out []byte, nonJSON bool) {
	dst = append(dst, e.head...)
	if d.MessageId != "" {
		dst = eventenc.AppendText(dst, []byte(d.MessageId))
	} else {
		dst = append(dst, idPrefix...)
		dst = strconv.AppendUint(dst, d.DeliveryTag, 10)
	}
	dst = append(dst, e.source...)
	if d.RoutingKey != "" {
		dst = append(dst, `,"subject":`...)
		dst = eventenc.AppendString(dst, d.RoutingKey)
	}
	t := d.Timestamp
	if t.IsZero() {
		t = now
	}
	dst = append(dst, `,"time":"`...)
	dst = e.clock.AppendTime(dst, t)
	dst = append(dst, '"')
	dst = append(dst, e.data...)
	dst = append(dst, `,"exchange":`...)
	dst = eventenc.AppendString(dst, d.Exchange)
	dst = append(dst, `,"routing_key":`...)
	dst = eventenc.AppendString(dst, d.RoutingKey)
	dst = append(dst, `,"redelivered":`...)
	dst = strconv.AppendBool(dst, d.Redelivered)
	for _, p := range [...]struct{ k, v string }{
		{`,"message_id":`, d.MessageId}, {`,"correlation_id":`, d.CorrelationId},
		{`,"content_type":`, d.ContentType}, {`,"type":`, d.Type}, {`,"app_id":`, d.AppId},
	} {
		if p.v != "" {
			dst = append(dst, p.k...)
			dst = eventenc.AppendString(dst, p.v)
		}
	}
	if !d.Timestamp.IsZero() {
		dst = append(dst, `,"timestamp":`...)
		dst = strconv.AppendInt(dst, d.Timestamp.UnixMilli(), 10)
	}
	dst = append(dst, `,"headers":`...)
	dst = appendTable(dst, d.Headers)
	dst = append(dst, `,"body":`...)
	dst, nonJSON = eventenc.AppendBody(dst, d.Body, e.format)
	return append(dst, "}}"...), nonJSON
}

// appendTable appends an AMQP table as a JSON object, keys sorted (a Go
// map has no order; sorted keys keep events reproducible).
func appendTable(dst []byte, t amqp.Table) []byte {
	if len(t) == 0 {
		return append(dst, "{}"...)
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = eventenc.AppendString(dst, k)
		dst = append(dst, ':')
		dst = appendValue(dst, t[k])
	}
	return append(dst, '}')
}

// appendValue appends one AMQP field value as JSON: numbers as numbers,
// byte arrays as text, timestamps as RFC 3339, tables and arrays nested.
func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return eventenc.AppendString(dst, v)
	case []byte:
		return eventenc.AppendQuoted(dst, v)
	case bool:
		return strconv.AppendBool(dst, v)
	case int8:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10)
	case int16:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case float32:
		return appendFloat(dst, float64(v), 32)
	case float64:
		return appendFloat(dst, v, 64)
	case amqp.Decimal:
		return appendDecimal(dst, v)
	case time.Time:
		dst = append(dst, '"')
		dst = v.UTC().AppendFormat(dst, time.RFC3339)
		return append(dst, '"')
	case amqp.Table:
		return appendTable(dst, v)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...) // JSON has no NaN or infinities
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

func appendDecimal(dst []byte, d amqp.Decimal) []byte {
	s := strconv.FormatInt(int64(d.Value), 10)
	if d.Scale == 0 {
		return append(dst, s...)
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	for len(s) <= int(d.Scale) {
		s = "0" + s
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = append(dst, s[:len(s)-int(d.Scale)]...)
	dst = append(dst, '.')
	return append(dst, s[len(s)-int(d.Scale):]...)
}

// headerText renders a header value as the bytes a message.Header carries
// (what a sink forwards): text as it is, other values as their JSON.
func headerText(dst []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(dst, v...)
	case []byte:
		return append(dst, v...)
	}
	return appendValue(dst, v)
}

// headers converts a delivery's headers, keys sorted, into hs and buf.
func headers(t amqp.Table, hs []message.Header, buf []byte) ([]message.Header, []byte) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		start := len(buf)
		buf = headerText(buf, t[k])
		hs = append(hs, message.Header{Key: k, Value: buf[start:len(buf):len(buf)]})
	}
	return hs, buf
}
