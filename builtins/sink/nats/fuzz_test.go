package nats

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/runtime/message"
)

// FuzzMsgID derives Nats-Msg-Ids from arbitrary events: it never panics,
// the id is never empty, the same input gives the same id, and a different
// payload gives a different one.
func FuzzMsgID(f *testing.F) {
	f.Add([]byte(`{"id":"orders-0-1"}`), []byte(`{"a":1}`))
	f.Add([]byte(`{"id":"a\"b\u00e9"}`), []byte(``))
	f.Add([]byte(`{"id":7}`), []byte(`x`))
	f.Add([]byte(`not json`), []byte(`x`))
	f.Fuzz(func(t *testing.T, event, payload []byte) {
		m := &message.Message{Event: event, Payload: payload, Pos: message.Position{Stream: "s", Offset: 3}}
		a := appendMsgID(nil, m, true)
		if len(a) == 0 || !bytes.Equal(a, appendMsgID(nil, m, true)) {
			t.Fatalf("id %q", a)
		}
		m2 := *m
		m2.Payload = append(bytes.Clone(payload), 'z')
		if bytes.Equal(a, appendMsgID(nil, &m2, true)) {
			t.Fatalf("payloads %q and %q share id %q", payload, m2.Payload, a)
		}
		if plain := appendMsgID(nil, m, false); len(plain) == 0 {
			t.Fatal("empty id")
		}
	})
}
