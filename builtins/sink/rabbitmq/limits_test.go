package rabbitmq

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func msgsOf(events ...string) []message.Message {
	out := make([]message.Message, len(events))
	for i, e := range events {
		out[i] = msg(e, `{"n":`+fmt.Sprint(i)+`}`, "")
		out[i].Pos.Offset = int64(i)
	}
	return out
}

// onlyFailed checks that err fails record i alone, event-permanent, with
// a message holding want.
func onlyFailed(t *testing.T, err error, i int, want string) {
	t.Helper()
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || re.Errs[i] == nil {
		t.Fatalf("want only record %d failed; Write returned (%s) %v", i, component.ClassOf(err), err)
	}
	if c := component.ClassOf(re.Errs[i]); c != component.ClassEventPermanent {
		t.Fatalf("record %d: class %s, want event_permanent: %v", i, c, re.Errs[i])
	}
	if !strings.Contains(re.Errs[i].Error(), want) {
		t.Fatalf("record %d: %v, want it to say %q", i, re.Errs[i], want)
	}
}

// bodies returns the bodies of the messages in q, in order.
func bodies(t *testing.T, b *amqptest.Broker, q string) []string {
	t.Helper()
	var out []string
	for _, d := range b.Get(t, q) {
		out = append(out, string(d.Body))
	}
	return out
}

// TestLongShortstrFailsAlone: a routing key, message_id or header name
// that renders longer than AMQP's 255-byte short string can never be
// published (the client refuses it). That record fails alone,
// event-permanent, saying which field and how long; the others are
// delivered once, and the connection goes on working.
func TestLongShortstrFailsAlone(t *testing.T) {
	b := amqptest.Connect(t)
	ex := testkit.Unique(t, "ex")
	q := b.Queue(t, "out")
	b.DeleteExchangeAtEnd(t, ex)
	s := newSink(t, fmt.Sprintf(`url = %q
exchange = %q
routing_key = "${route}"
message_id = "${id}"
variables = { route = "$.route", id = "$.id" }
`, b.URL, ex))
	openSink(t, s)
	if err := b.Ch.QueueBind(q, "ok.#", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, event string
		headers     []message.Header
		want        string
	}{
		{"routing key", `{"route":"ok.` + long + `"}`, nil, "the routing key is 303 bytes"},
		{"message_id", `{"route":"ok.1","id":"` + long + `"}`, nil, "the message_id is 300 bytes"},
		{"header name", `{"route":"ok.1"}`, []message.Header{{Key: long, Value: []byte("v")}}, "is 300 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := msgsOf(`{"route":"ok.1"}`, tc.event, `{"route":"ok.2"}`)
			msgs[1].Headers = tc.headers
			onlyFailed(t, s.Write(context.Background(), msgs), 1, tc.want)
			if got := bodies(t, b, q); len(got) != 2 || got[0] != `{"n":0}` || got[1] != `{"n":2}` {
				t.Fatalf("delivered %q, want records 0 and 2 once", got)
			}
		})
	}
}

// TestValidateShortstrs: fixed names longer than an AMQP short string are
// configuration errors.
func TestValidateShortstrs(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, tc := range []struct{ src, path string }{
		{"exchange = \"" + long + "\"", "sink.exchange"},
		{"routing_key = \"" + long + "\"", "sink.routing_key"},
		{"message_id = \"" + long + "\"", "sink.message_id"},
		{"content_type = \"" + long + "\"", "sink.content_type"},
		{"headers = { " + long + " = \"v\" }", "sink.headers"},
	} {
		_, p := componenttest.Decode(t, Register, component.KindSink, "rabbitmq", "url = \"amqp://h/\"\n"+tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.Contains(probs[0].Msg, "256 bytes") {
			t.Errorf("%s: %+v", tc.path, probs)
		}
	}
}
