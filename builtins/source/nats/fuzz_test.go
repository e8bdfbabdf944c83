package nats

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/runtime/message"
)

// fuzzMsg is a received message as the encoder sees it.
type fuzzMsg struct {
	jetstream.Msg // the acknowledgement methods are not used
	subject       string
	data          []byte
	header        nats.Header
	reply         string
}

func (m *fuzzMsg) Subject() string                 { return m.subject }
func (m *fuzzMsg) Data() []byte                    { return m.data }
func (m *fuzzMsg) Headers() nats.Header            { return m.header }
func (m *fuzzMsg) Ack() error                      { return nil }
func (m *fuzzMsg) DoubleAck(context.Context) error { return nil }
func (m *fuzzMsg) Reply() string {
	if m.reply != "" {
		return m.reply
	}
	// A v2 subject: stream sequence 42, stored at 1700000000123 ms.
	return "$JS.ACK._.ACCHASH.S1.C1.1.42.7.1700000000123000000.0.rnd"
}
func (m *fuzzMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, jetstream.ErrNotJSMessage
}

// FuzzEncode encodes messages with arbitrary subjects, headers and bodies:
// the event is always valid JSON, whatever the value format, and keeps the
// subject and the sequence.
func FuzzEncode(f *testing.F) {
	f.Add("orders.eu", "trace", "t-1", []byte(`{"a":1}`))
	f.Add("o\"rders", "k\"ey", "\xff", []byte("\xff\xfe not json"))
	f.Add("", "", "", []byte(""))
	f.Fuzz(func(t *testing.T, subject, hk, hv string, body []byte) {
		for _, format := range []string{"json", "text", "base64"} {
			e := newEncoder("127.0.0.1:4222", "S\"1", format, 1<<20)
			m := &fuzzMsg{subject: subject, data: body, header: nats.Header{hk: {hv, hv + "2"}}}
			var out message.Message
			buf, _, ok := e.appendMessage(nil, &out, m)
			if !ok || len(buf) != len(out.Payload) {
				t.Fatal("no event")
			}
			var ev struct {
				ID   string
				Data struct {
					Subject  string
					Sequence uint64
				}
			}
			if err := json.Unmarshal(out.Payload, &ev); err != nil {
				t.Fatalf("%s: invalid JSON %s: %v", format, out.Payload, err)
			}
			if ev.ID != "S\"1-0-42" || ev.Data.Sequence != 42 || string(out.Key) != subject {
				t.Fatalf("%s: id %q, sequence %d, key %q", format, ev.ID, ev.Data.Sequence, out.Key)
			}
		}
	})
}

// BenchmarkEncode measures wrapping one message into its CloudEvent the
// way Read does it for a batch of 500: ns/op and allocs/op are per message
// (the metadata parse of the client included).
func BenchmarkEncode(b *testing.B) {
	e := newEncoder("127.0.0.1:4222", "ORDERS", "json", 1<<20)
	msgs := make([]jetstream.Msg, 500)
	for i := range msgs {
		msgs[i] = &fuzzMsg{subject: "orders.eu-west", data: []byte(`{"order_id":"o-00000001","region":"eu-west","amount":129.5,"items":3,"email":"someone@example.com"}`)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(msgs) {
		n := min(len(msgs), b.N-done)
		size := 0
		for _, m := range msgs[:n] {
			size += e.sizeHint(m)
		}
		buf := make([]byte, 0, size)
		out := make([]message.Message, n)
		for i, m := range msgs[:n] {
			buf, _, _ = e.appendMessage(buf, &out[i], m)
		}
		if len(buf) > size {
			b.Fatalf("the size hint %d is short of %d", size, len(buf))
		}
	}
}
