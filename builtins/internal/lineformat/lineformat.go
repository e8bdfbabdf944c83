// Package lineformat turns one input line (stdin, a file, one element of an
// HTTP body) into the CloudEvents JSON a task processes, following the
// `format` setting every line source shares (docs/architecture.md, "Line sources and line sinks"):
//
//   - auto (default): a JSON object with a "specversion" member is taken as
//     it is; any other JSON value is wrapped with data = the value; anything
//     else is wrapped with data = the line as a string. Nothing is an error.
//   - json: like auto, but a line that is not JSON is a decode error.
//   - cloudevents: the line must be a JSON object with string members
//     specversion, id, source and type; anything else is a decode error.
//
// Wrapped events get id, source, type and time from the connector. The id is
// the record's position ("stream-partition-offset"), so a replayed line
// keeps its id.
package lineformat

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Format is the value of a line source's `format` key.
type Format string

const (
	Auto        Format = "auto"
	JSON        Format = "json"
	CloudEvents Format = "cloudevents"
)

// Enum lists the formats for config struct tags.
const Enum = "auto,json,cloudevents"

// UTF8Policy is the value of a line source's `invalid_utf8` key: what
// happens to a line holding bytes that are not valid UTF-8. Events are JSON,
// and JSON is UTF-8, so such bytes never pass through as they are.
type UTF8Policy string

const (
	// Replace turns each invalid byte into U+FFFD (the zero value does the
	// same), as encoding/json and the Kafka source do.
	Replace UTF8Policy = "replace"
	// Reject sends the line to the dead-letter queue at stage decode, with
	// its bytes kept exactly.
	Reject UTF8Policy = "reject"
)

// UTF8Enum lists the policies for config struct tags.
const UTF8Enum = "replace,reject"

// ErrTooLarge is wrapped by the error returned for a line over the limit.
var ErrTooLarge = errors.New("event too large")

// ErrDecode is wrapped by errors for lines a strict format rejects.
var ErrDecode = errors.New("cannot decode event")

// Wrapper builds events from lines. It is not safe for concurrent use; each
// source goroutine owns one.
type Wrapper struct {
	Format Format
	// InvalidUTF8 says what to do with a line that is not valid UTF-8
	// ("": Replace).
	InvalidUTF8 UTF8Policy
	// Source and Type are the CloudEvents attributes of wrapped events.
	Source string
	Type   string
	// MaxEvent is the largest accepted line in bytes (0: no limit).
	MaxEvent int
	// MaxBuilt is the largest event built from a line (0: no limit): the
	// task's event limit, past which the engine dead-letters an event at
	// stage decode with neither the line's position nor its own size. The
	// envelope adds about 170 bytes and escaping a text line up to six
	// times its size, so a line under MaxEvent can make an event over it.
	MaxBuilt int

	// prefix caches `{"specversion":"1.0","id":"` and the quoted source and
	// type, built once.
	srcTok, typTok []byte
	timeTok        []byte
	timeAt         time.Time
	id             []byte // scratch for the id
	fixed          []byte // scratch for a line with invalid UTF-8 replaced
}

// SetTime sets the ingest time written into wrapped events. Sources call it
// once per batch: formatting a time per event would cost more than the rest
// of the wrapping.
func (w *Wrapper) SetTime(t time.Time) {
	t = t.UTC().Truncate(time.Millisecond)
	if t.Equal(w.timeAt) && w.timeTok != nil {
		return
	}
	w.timeAt = t
	w.timeTok = append(w.timeTok[:0], '"')
	w.timeTok = t.AppendFormat(w.timeTok, "2006-01-02T15:04:05.000Z07:00")
	w.timeTok = append(w.timeTok, '"')
}

var byteOrderMark = []byte("\ufeff")

// Append appends the event built from line to dst and returns it. line must
// not include its newline (a trailing '\r' is dropped, and so is a UTF-8
// byte order mark at the start of a stream: pos.Offset 0). Bytes that are not
// valid UTF-8 are replaced by U+FFFD, or make the line a decode error under
// Reject; the event is always valid JSON in valid UTF-8. On a decode error, an
// over-size line or an over-size event built from it (MaxBuilt), it returns
// dst unchanged and an error wrapping ErrDecode or ErrTooLarge whose message
// names the reason; the caller keeps the raw line for the dead-letter record.
func (w *Wrapper) Append(dst, line []byte, pos message.Position) ([]byte, error) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	// A byte order mark at the start of a stream (Windows tools write one
	// at the start of a file) is not part of the first line.
	if pos.Offset == 0 && bytes.HasPrefix(line, byteOrderMark) {
		line = line[len(byteOrderMark):]
	}
	n0 := len(line)
	if w.MaxEvent > 0 && len(line) > w.MaxEvent {
		return dst, fmt.Errorf("%w: %d bytes, the limit is %d (raise max_event_size)", ErrTooLarge, len(line), w.MaxEvent)
	}
	if !utf8.Valid(line) {
		if w.InvalidUTF8 == Reject {
			return dst, fmt.Errorf("%w: not valid UTF-8 (invalid_utf8 = \"reject\"; \"replace\" turns each bad byte into U+FFFD)", ErrDecode)
		}
		w.fixed = jsonscan.AppendValidUTF8(w.fixed[:0], line)
		line = w.fixed
	}
	if w.srcTok == nil {
		w.srcTok = jsonscan.AppendQuoted(nil, []byte(w.Source))
		w.typTok = jsonscan.AppendQuoted(nil, []byte(w.Type))
	}
	if w.timeTok == nil {
		w.SetTime(time.Now())
	}
	start := jsonscan.SkipSpace(line, 0)
	isJSON := start < len(line) && jsonscan.Valid(line)
	if isJSON && line[start] == '{' && isCloudEvent(line, start) {
		if w.Format == CloudEvents {
			if err := checkCloudEvent(line, start); err != nil {
				return dst, err
			}
		}
		// Passed on as it is, the event can still be over MaxBuilt: with
		// its invalid UTF-8 replaced (a byte becomes three), or a line
		// under a source's max_event_size that is over the task's limit.
		if w.MaxBuilt > 0 && len(line) > w.MaxBuilt {
			how := ""
			if len(line) != n0 {
				how = " (invalid UTF-8 replaced by U+FFFD)"
			}
			return dst, fmt.Errorf("%w: the event passed on from its %d bytes%s is %d bytes, the task's event limit is %d (raise max_event_size)", ErrTooLarge, n0, how, len(line), w.MaxBuilt)
		}
		return append(dst, line...), nil
	}
	switch w.Format {
	case CloudEvents:
		if !isJSON {
			return dst, fmt.Errorf("%w: not JSON (format = \"cloudevents\" wants one CloudEvent per line)", ErrDecode)
		}
		return dst, fmt.Errorf("%w: JSON without \"specversion\" is not a CloudEvent (format = \"cloudevents\"; use \"auto\" or \"json\" to wrap plain JSON)", ErrDecode)
	case JSON:
		if !isJSON {
			return dst, fmt.Errorf("%w: not valid JSON (format = \"json\"; use \"auto\" to accept text lines)", ErrDecode)
		}
	}
	begin := len(dst)
	dst = append(dst, `{"specversion":"1.0","id":"`...)
	w.id = pos.AppendID(w.id[:0])
	dst = jsonscan.AppendEscaped(dst, w.id)
	dst = append(dst, `","source":`...)
	dst = append(dst, w.srcTok...)
	dst = append(dst, `,"type":`...)
	dst = append(dst, w.typTok...)
	dst = append(dst, `,"time":`...)
	dst = append(dst, w.timeTok...)
	if isJSON {
		dst = append(dst, `,"datacontenttype":"application/json","data":`...)
		dst = append(dst, line[start:jsonscan.Skip(line, start)]...)
	} else {
		dst = append(dst, `,"datacontenttype":"text/plain","data":`...)
		dst = jsonscan.AppendQuoted(dst, line)
	}
	dst = append(dst, '}')
	// Refused here, the line is the source's own rejection (the HTTP
	// source's "rejected"), named by its position, rather than accepted and
	// then dead-lettered by the engine.
	if n := len(dst) - begin; w.MaxBuilt > 0 && n > w.MaxBuilt {
		return dst[:begin], fmt.Errorf("%w: the event built from its %d bytes (wrapped in a CloudEvent, escaped) is %d bytes, the limit is %d (raise max_event_size)", ErrTooLarge, len(line), n, w.MaxBuilt)
	}
	return dst, nil
}

// isCloudEvent reports whether the object at line[start] has a top-level
// "specversion" member.
func isCloudEvent(line []byte, start int) bool {
	m := jsonscan.MembersOf(line, start)
	for m.Next() {
		if m.KeyIs("specversion") {
			return true
		}
	}
	return false
}

func checkCloudEvent(line []byte, start int) error {
	want := [...]string{"specversion", "id", "source", "type"}
	var seen [len(want)]bool
	m := jsonscan.MembersOf(line, start)
	for m.Next() {
		for i, k := range want {
			if m.KeyIs(k) {
				vs, _ := m.Value()
				if line[vs] != '"' {
					return fmt.Errorf("%w: CloudEvent attribute %q must be a string", ErrDecode, k)
				}
				seen[i] = true
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("%w: CloudEvent lacks the required attribute %q", ErrDecode, want[i])
		}
	}
	return nil
}
