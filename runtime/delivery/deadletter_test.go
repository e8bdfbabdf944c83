package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/message"
)

// FuzzRecordJSON: a dead-letter record is one JSON object in valid UTF-8
// whatever its event and error hold, and it keeps the event's bytes: as
// JSON or a string when they are valid UTF-8, else also as event_base64.
func FuzzRecordJSON(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"a"}`), "boom", "s")
	f.Add([]byte("raw \xff\xfe line"), "cannot decode \xc3", "file\xe9")
	f.Add([]byte("{\"a\":\"\xe9\"}"), "", "")
	f.Add([]byte(""), "x", "y")
	f.Fuzz(func(t *testing.T, event []byte, msg, stream string) {
		r := Record{Event: event, Task: "t", Stage: "decode", Err: errors.New(msg), Attempts: 1,
			Pos: message.Position{Stream: stream, Offset: 3}, Time: time.Unix(0, 0)}
		out := r.AppendJSON(nil)
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("record %q is not JSON in valid UTF-8", out)
		}
		var rec struct {
			Event       json.RawMessage `json:"event"`
			EventBase64 *string         `json:"event_base64"`
		}
		if err := json.Unmarshal(out, &rec); err != nil {
			t.Fatal(err)
		}
		switch {
		case !utf8.Valid(event):
			if rec.EventBase64 == nil {
				t.Fatalf("event %q is not UTF-8 but has no event_base64: %s", event, out)
			}
			raw, err := base64.StdEncoding.DecodeString(*rec.EventBase64)
			if err != nil || !bytes.Equal(raw, event) {
				t.Fatalf("event_base64 %q does not give the event %q back", *rec.EventBase64, event)
			}
		case rec.EventBase64 != nil:
			t.Fatalf("event_base64 for a UTF-8 event: %s", out)
		}
	})
}
