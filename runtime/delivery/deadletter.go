package delivery

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Record is what the dead-letter queue keeps about a failed event.
type Record struct {
	Event    []byte // the original source event, unchanged
	Task     string
	Stage    string // decode | filter | transform[N] | sink
	Err      error
	Attempts int
	Pos      message.Position
	Time     time.Time
}

// Class returns the error class recorded for r.
func (r *Record) Class() string {
	switch {
	case r.Stage == "decode":
		return "decode"
	case r.Err == nil:
		return "unknown"
	}
	return component.ClassOf(r.Err).String()
}

// AppendJSON appends the record as one JSON object (docs/delivery.md, "Dead-letter queue"):
// {"event": <the original, as JSON or as a string of its text (when it is
// not JSON, or is a JSON string)>, "task", "stage",
// "error": {"class", "message"}, "attempts", "position", "time"}. The
// record is valid UTF-8 whatever the event holds: an event that is not
// valid UTF-8 is written as a string with each bad byte replaced by U+FFFD,
// followed by "event_base64" with its exact bytes (what a replay reads).
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event":`...)
	valid := utf8.Valid(r.Event)
	// A string in "event" is always the event's text, which a replay reads
	// as a line: so an event that is itself a JSON string ("abc" with its
	// quotes) is kept as the string of its text ("\"abc\""), not as the
	// JSON string "abc", which is also how the text line abc is kept (the
	// replay made the one into the other, and a JSON string holding a
	// CloudEvent into that CloudEvent).
	if len(r.Event) > 0 && valid && jsonscan.Valid(r.Event) && r.Event[jsonscan.SkipSpace(r.Event, 0)] != '"' {
		dst = jsonscan.AppendCompact(dst, r.Event)
	} else {
		dst = jsonscan.AppendQuoted(dst, r.Event)
	}
	if !valid {
		dst = append(dst, `,"event_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Event)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"task":`...)
	dst = jsonscan.AppendQuoted(dst, []byte(r.Task))
	dst = append(dst, `,"stage":`...)
	dst = jsonscan.AppendQuoted(dst, []byte(r.Stage))
	dst = append(dst, `,"error":{"class":`...)
	dst = jsonscan.AppendQuoted(dst, []byte(r.Class()))
	dst = append(dst, `,"message":`...)
	msg := ""
	if r.Err != nil {
		msg = r.Err.Error()
	}
	dst = jsonscan.AppendQuoted(dst, []byte(msg))
	dst = append(dst, `},"attempts":`...)
	dst = strconv.AppendInt(dst, int64(r.Attempts), 10)
	dst = append(dst, `,"position":{"stream":`...)
	dst = jsonscan.AppendQuoted(dst, []byte(r.Pos.Stream))
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(r.Pos.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, r.Pos.Offset, 10)
	dst = append(dst, `},"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

// Header names used when a dead-letter sink keeps the original bytes as the
// record value and the rest as headers (Kafka).
const (
	HeaderTask     = "sluice-task"
	HeaderStage    = "sluice-stage"
	HeaderClass    = "sluice-error-class"
	HeaderError    = "sluice-error"
	HeaderAttempts = "sluice-attempts"
	HeaderPosition = "sluice-position"
	HeaderTime     = "sluice-time"
)

// Headers returns the record's metadata as headers.
func (r *Record) Headers() []message.Header {
	msg := ""
	if r.Err != nil {
		msg = r.Err.Error()
	}
	return []message.Header{
		{Key: HeaderTask, Value: []byte(r.Task)},
		{Key: HeaderStage, Value: []byte(r.Stage)},
		{Key: HeaderClass, Value: []byte(r.Class())},
		{Key: HeaderError, Value: []byte(msg)},
		{Key: HeaderAttempts, Value: strconv.AppendInt(nil, int64(r.Attempts), 10)},
		{Key: HeaderPosition, Value: []byte(r.Pos.String())},
		{Key: HeaderTime, Value: r.Time.UTC().AppendFormat(nil, time.RFC3339Nano)},
	}
}

// RawDeadLetters is implemented by sinks that keep a dead-letter record as
// the original bytes plus headers (Kafka) rather than as a JSON object.
type RawDeadLetters interface {
	DeadLetterRaw() bool
}
