package http

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// framing is how a body is cut into elements, chosen by Content-Type.
type framing uint8

const (
	frameSniff      framing = iota // no Content-Type (or a form): JSON when it parses, else lines
	frameJSON                      // one JSON value; an array is one element per item
	frameLines                     // NDJSON or text: one element per non-blank line
	frameStructured                // application/cloudevents+json: one CloudEvent
	frameBatch                     // application/cloudevents-batch+json: an array of CloudEvents
	frameBinary                    // ce-* headers: one CloudEvent, the body is its data
)

// statusError is a request the source refuses as a whole, with the HTTP
// status to answer.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func badRequest(format string, args ...any) *statusError {
	return &statusError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// mediaType returns the lowercased media type of a Content-Type value,
// without parameters. It does not allocate for the usual lowercase values.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

const acceptedTypes = "application/json, application/x-ndjson, text/plain, application/cloudevents+json, application/cloudevents-batch+json, or CloudEvents binary mode (ce-* headers)"

// classify picks the framing for a media type. binary reports a
// ce-specversion header.
func classify(media string, binary bool) (framing, *statusError) {
	switch {
	case media == "application/cloudevents+json":
		return frameStructured, nil
	case media == "application/cloudevents-batch+json":
		return frameBatch, nil
	case binary:
		return frameBinary, nil
	case media == "" || media == "application/x-www-form-urlencoded":
		// curl -d sends a form type by default; such a body is sniffed.
		return frameSniff, nil
	case isJSONMedia(media):
		return frameJSON, nil
	case isLinesMedia(media):
		return frameLines, nil
	}
	return 0, &statusError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("unsupported Content-Type %q: send %s", media, acceptedTypes)}
}

func isJSONMedia(m string) bool {
	return m == "application/json" || m == "text/json" || m == "application/x-json" || strings.HasSuffix(m, "+json")
}

func isLinesMedia(m string) bool {
	switch m {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl",
		"application/jsonlines", "application/x-jsonlines", "application/json-lines":
		return true
	}
	return strings.HasPrefix(m, "text/")
}

// isTextMedia reports whether binary-mode data of this type is text, sent
// as a JSON string when it is valid UTF-8.
func isTextMedia(m string) bool {
	return m == "" || strings.HasPrefix(m, "text/") || m == "application/xml" || strings.HasSuffix(m, "+xml") ||
		m == "application/x-www-form-urlencoded" || m == "application/yaml" || m == "application/javascript"
}

// span locates a built event inside chunk.out; s < 0 marks a raw element
// (a decode failure) whose Payload is already set.
type span struct{ s, e int }

// chunk holds the events of one batch; they point into its out buffer.
type chunk struct {
	out      []byte
	msgs     []message.Message
	spans    []span
	rejected int
}

func (c *chunk) reset() {
	clear(c.msgs) // drop references into old buffers
	c.msgs = c.msgs[:0]
	c.spans = c.spans[:0]
	c.out = c.out[:0]
	c.rejected = 0
}

// finish points each built message at its event. Events are appended to
// one buffer that may move while it grows, so slices are taken at the end.
func (c *chunk) finish() []message.Message {
	for i, sp := range c.spans {
		if sp.s >= 0 {
			ev := c.out[sp.s:sp.e:sp.e]
			c.msgs[i].Payload, c.msgs[i].Event = ev, ev
		}
	}
	return c.msgs
}

// builder turns one request body into batches of messages. Builders are
// pooled: the buffers are reused once the engine acknowledged the batches
// that point into them.
type builder struct {
	w      lineformat.Wrapper
	body   []byte
	cur    *chunk   // the batch being filled
	spare  []*chunk // acknowledged batches, for reuse
	attrs  []attr
	stream string
	now    time.Time
	next   int64 // index of the next element of the body
	// rejected counts the elements of the whole body that failed at decode.
	rejected int

	// A batch is handed to flush once it holds maxEvents events or
	// maxBytes bytes of them; flush returns false to stop the split (the
	// request failed). Without flush the whole body is one batch.
	flush     func(*chunk) bool
	maxEvents int
	maxBytes  int
	stopped   bool
}

// attr is one binary-mode CloudEvents attribute.
type attr struct{ name, value string }

// reset prepares b for a request whose elements get positions in stream.
func (b *builder) reset(stream string, now time.Time) {
	if b.cur == nil {
		b.cur = b.takeChunk()
	}
	b.cur.reset()
	b.stream = stream
	b.now = now
	b.next = 0
	b.rejected = 0
	b.stopped = false
	b.flush = nil
	b.w.SetTime(now)
}

// finish returns the messages of the batch being filled.
func (b *builder) finish() []message.Message { return b.cur.finish() }

// takeChunk returns an acknowledged batch's buffers for reuse, or new ones.
func (b *builder) takeChunk() *chunk {
	if n := len(b.spare); n > 0 {
		c := b.spare[n-1]
		b.spare = b.spare[:n-1]
		c.reset()
		return c
	}
	return &chunk{}
}

// cut hands the batch being filled to flush and starts a new one.
func (b *builder) cut() {
	full := b.cur
	b.cur = b.takeChunk()
	if !b.flush(full) {
		b.stopped = true
	}
}

// split cuts b.body into messages following f. format is the source's
// configured format; CloudEvents content types force the strict
// cloudevents format. It returns a *statusError for a body that cannot be
// cut into elements at all, before any batch was handed on; per-element
// failures become messages with Err.
func (b *builder) split(f framing, format lineformat.Format, h http.Header, media string) *statusError {
	body := b.body
	b.w.Format = format
	switch f {
	case frameBinary:
		return b.binary(h, media, format)
	case frameLines:
		b.lines(body)
		return nil
	}
	start := jsonscan.SkipSpace(body, 0)
	if start == len(body) {
		return nil // an empty body holds no events
	}
	valid := jsonscan.Valid(body)
	end := len(body)
	if valid {
		end = jsonscan.Skip(body, start)
	}
	switch f {
	case frameSniff:
		if !valid {
			b.lines(body)
			return nil
		}
	case frameJSON:
		if !valid {
			if format == lineformat.Auto {
				// auto takes anything: a body that does not parse is one text event.
				b.add(trimRightSpace(body[start:]), start)
				return nil
			}
			return badRequest("body is not valid JSON (Content-Type %s, format = %q): send one JSON value, a JSON array, or NDJSON as application/x-ndjson", media, format)
		}
	case frameStructured:
		if !valid {
			return badRequest("body is not valid JSON: application/cloudevents+json carries one CloudEvent as a JSON object")
		}
		if body[start] != '{' {
			return badRequest("body is a JSON %s: application/cloudevents+json carries one CloudEvent as a JSON object (send arrays as application/cloudevents-batch+json)", jsonscan.KindOf(body[start]))
		}
		b.w.Format = lineformat.CloudEvents
	case frameBatch:
		if !valid || body[start] != '[' {
			return badRequest("body is not a JSON array: application/cloudevents-batch+json carries an array of CloudEvents")
		}
		b.w.Format = lineformat.CloudEvents
	}
	if body[start] == '[' {
		it := jsonscan.ElementsOf(body, start)
		for !b.stopped && it.Next() {
			s, e := it.Value()
			b.add(body[s:e], s)
		}
		return nil
	}
	b.add(body[start:end], start)
	return nil
}

// lines adds one element per non-blank line of body.
func (b *builder) lines(body []byte) {
	for i := 0; i < len(body) && !b.stopped; {
		j := bytes.IndexByte(body[i:], '\n')
		next := len(body)
		if j >= 0 {
			next = i + j + 1
			j += i
		} else {
			j = len(body)
		}
		line := body[i:j]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if jsonscan.SkipSpace(line, 0) < len(line) {
			b.add(line, i)
		}
		i = next
	}
}

// add builds the event for one element found at byte offset off of the body.
func (b *builder) add(elem []byte, off int) {
	c := b.cur
	if b.flush != nil && len(c.msgs) > 0 && (len(c.msgs) >= b.maxEvents || len(c.out) >= b.maxBytes) {
		// Cut only when there is more: a body of exactly one batch is
		// one batch.
		if b.cut(); b.stopped {
			return
		}
		c = b.cur
	}
	pos := message.Position{Stream: b.stream, Offset: b.next}
	b.next++
	start := len(c.out)
	out, err := b.w.Append(c.out, elem, pos)
	c.out = out
	if err != nil {
		b.fail(elem, pos, fmt.Errorf("http request %s, element %d (body byte %d): %w", b.stream, pos.Offset, off, err))
	} else {
		c.msgs = append(c.msgs, message.Message{Time: b.now, Pos: pos})
		c.spans = append(c.spans, span{start, len(c.out)})
	}
}

// fail records an element that cannot become an event; the engine sends it
// to the dead-letter queue at stage decode with raw as the original bytes.
func (b *builder) fail(raw []byte, pos message.Position, err error) {
	c := b.cur
	raw = raw[:len(raw):len(raw)]
	c.msgs = append(c.msgs, message.Message{Payload: raw, Event: raw, Time: b.now, Pos: pos, Err: err})
	c.spans = append(c.spans, span{-1, -1})
	c.rejected++
	b.rejected++
}

// binary builds one CloudEvent from ce-* headers (CloudEvents HTTP binding,
// binary content mode) with the body as its data.
func (b *builder) binary(h http.Header, media string, format lineformat.Format) *statusError {
	b.attrs = b.attrs[:0]
	for k, vs := range h {
		if len(k) <= 3 || !strings.EqualFold(k[:3], "ce-") || len(vs) == 0 {
			continue
		}
		name := strings.ToLower(k[3:])
		if !validAttrName(name) {
			return badRequest("header %s: CloudEvents attribute names are lowercase letters and digits only", k)
		}
		switch name {
		case "data", "datacontenttype":
			return badRequest("header %s: %s is not an attribute in binary mode (the body is the data, Content-Type its datacontenttype)", k, name)
		}
		v := vs[0]
		if strings.IndexByte(v, '%') >= 0 {
			// The binding percent-encodes values outside printable ASCII.
			if d, err := url.PathUnescape(v); err == nil && utf8.ValidString(d) {
				v = d
			}
		}
		b.attrs = append(b.attrs, attr{name, v})
	}
	slices.SortFunc(b.attrs, func(x, y attr) int { return strings.Compare(x.name, y.name) })
	required := [...]string{"specversion", "id", "source", "type"}
	var req [len(required)]string
	for i, name := range required {
		j, ok := slices.BinarySearchFunc(b.attrs, name, func(a attr, n string) int { return strings.Compare(a.name, n) })
		if !ok || b.attrs[j].value == "" {
			return badRequest("CloudEvents binary mode: header ce-%s is missing or empty (required: ce-specversion, ce-id, ce-source, ce-type)", name)
		}
		req[i] = b.attrs[j].value
	}
	if req[0] != "1.0" {
		return badRequest("CloudEvents binary mode: ce-specversion %q is not supported (want \"1.0\")", req[0])
	}

	c := b.cur
	pos := message.Position{Stream: b.stream}
	b.next++
	start := len(c.out)
	out := append(c.out, '{')
	for i, name := range required {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendMember(out, name, req[i])
	}
	for _, a := range b.attrs {
		if slices.Contains(required[:], a.name) {
			continue
		}
		out = append(out, ',')
		out = appendMember(out, a.name, a.value)
	}
	if ct := h.Get("Content-Type"); ct != "" {
		out = append(out, ',')
		out = appendMember(out, "datacontenttype", ct)
	}
	body := b.body
	if isJSONMedia(media) && !utf8.Valid(body) {
		// JSON data must be UTF-8 to stay JSON inside the event.
		if b.w.InvalidUTF8 == lineformat.Reject {
			c.out = out[:start]
			b.fail(body, pos, fmt.Errorf("http request %s: %w: the body is not valid UTF-8 (invalid_utf8 = \"reject\")", b.stream, lineformat.ErrDecode))
			return nil
		}
		body = jsonscan.AppendValidUTF8(nil, body)
	}
	if ds := jsonscan.SkipSpace(body, 0); ds < len(body) || (len(body) > 0 && !isJSONMedia(media)) {
		switch {
		case isJSONMedia(media) && jsonscan.Valid(body):
			out = append(out, `,"data":`...)
			tok := body[ds:jsonscan.Skip(body, ds)]
			if jsonscan.IsCompact(tok) {
				out = append(out, tok...)
			} else {
				out = jsonscan.AppendCompact(out, tok)
			}
		case isJSONMedia(media) && format != lineformat.Auto:
			c.out = out[:start]
			b.fail(body, pos, fmt.Errorf("http request %s: %w: the body is not valid JSON although Content-Type is %s (format = %q)", b.stream, lineformat.ErrDecode, media, format))
			return nil
		case (isTextMedia(media) || isJSONMedia(media)) && utf8.Valid(body):
			out = append(out, `,"data":`...)
			out = jsonscan.AppendQuoted(out, body)
		default:
			out = append(out, `,"data_base64":"`...)
			out = base64.StdEncoding.AppendEncode(out, body)
			out = append(out, '"')
		}
	}
	out = append(out, '}')
	c.out = out
	// The event is held to max_event_size and to the task's event limit,
	// which the engine holds every event to (the source's max_event_size
	// may be above it): over either, it is the source's own rejection,
	// counted in the answer, rather than accepted and then dead-lettered.
	limit, whose := b.w.MaxEvent, "the limit"
	if mb := b.w.MaxBuilt; mb > 0 && (limit <= 0 || mb < limit) {
		limit, whose = mb, "the task's event limit"
	}
	if limit > 0 && len(out)-start > limit {
		ev := slices.Clone(out[start:])
		c.out = out[:start]
		b.fail(ev, pos, fmt.Errorf("http request %s: %w: %d bytes, %s is %d (raise max_event_size)", b.stream, lineformat.ErrTooLarge, len(ev), whose, limit))
		return nil
	}
	c.msgs = append(c.msgs, message.Message{Time: b.now, Pos: pos})
	c.spans = append(c.spans, span{start, len(out)})
	return nil
}

func appendMember(dst []byte, name, value string) []byte {
	dst = append(dst, '"')
	dst = append(dst, name...) // validated: lowercase letters and digits
	dst = append(dst, '"', ':')
	return jsonscan.AppendQuoted(dst, []byte(value))
}

func validAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func trimRightSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
