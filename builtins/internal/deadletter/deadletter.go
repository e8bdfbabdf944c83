// Package deadletter reads dead-letter records (docs/delivery.md) for a
// replay: the dlq source (`sluice dlq replay`) and the admin console's
// replay turn a record into the same event through it.
package deadletter

import (
	"encoding/base64"
	"errors"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// The CloudEvents source and type of a replayed event that was not a
// CloudEvent (a raw line that failed to decode).
const (
	ReplaySource = "sluice/dlq"
	ReplayType   = "sluice.dlq.replay"
)

// NewWrapper returns the wrapper that makes a replay's events: a
// CloudEvent unchanged, anything else wrapped as the auto line format
// would. maxEvent is the task's event limit (0: none).
func NewWrapper(maxEvent int) lineformat.Wrapper {
	return lineformat.Wrapper{Format: lineformat.Auto, Source: ReplaySource, Type: ReplayType, MaxEvent: maxEvent, MaxBuilt: maxEvent}
}

// Fields returns the raw "event" value, the decoded "stage" and the decoded
// "event_base64" string (nil when absent) of a dead-letter record.
func Fields(rec []byte) (event, stage, eventBase64 []byte) {
	m := jsonscan.MembersOf(rec, jsonscan.SkipSpace(rec, 0))
	for m.Next() {
		switch {
		case m.KeyIs("event"):
			vs, ve := m.Value()
			if ve > vs {
				event = rec[vs:ve]
			}
		case m.KeyIs("stage"):
			vs, ve := m.Value()
			if ve > vs && rec[vs] == '"' {
				stage, _ = jsonscan.AppendString(nil, rec[vs:ve])
			}
		case m.KeyIs("event_base64"):
			vs, ve := m.Value()
			if ve > vs && rec[vs] == '"' {
				eventBase64, _ = jsonscan.AppendString(nil, rec[vs:ve])
			}
		}
	}
	return event, stage, eventBase64
}

// ErrBase64 is returned by Raw for an "event_base64" that is not base64.
var ErrBase64 = errors.New("event_base64 is not base64")

// Raw returns the bytes of the event a record keeps, from its "event" and
// "event_base64" members (Fields): the exact bytes when the event was not
// valid UTF-8, the text of a string (an event that was not JSON, or a raw
// line that failed to decode), else the JSON value itself.
func Raw(event, eventBase64 []byte) ([]byte, error) {
	switch {
	case eventBase64 != nil:
		// The event was not valid UTF-8: its exact bytes are here, and
		// "event" holds them with U+FFFD in place of the bad bytes.
		raw, err := base64.StdEncoding.AppendDecode(nil, eventBase64)
		if err != nil {
			return nil, ErrBase64
		}
		return raw, nil
	case len(event) > 0 && event[0] == '"':
		raw, _ := jsonscan.AppendString(nil, event)
		return raw, nil
	}
	return append([]byte(nil), event...), nil
}

// Event returns the event a replay of the dead-letter record rec emits, at
// position pos (a wrapped event's id derives from it), with no event limit:
// the task that processes it applies its own.
func Event(rec []byte, pos message.Position) ([]byte, error) {
	if !jsonscan.Valid(rec) {
		return nil, errors.New("not a dead-letter record: not JSON")
	}
	event, _, b64 := Fields(rec)
	if event == nil {
		return nil, errors.New(`not a dead-letter record: no "event" member`)
	}
	raw, err := Raw(event, b64)
	if err != nil {
		return nil, err
	}
	w := NewWrapper(0)
	return w.Append(nil, raw, pos)
}
