package rabbitmq

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

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

// boundSink opens a sink publishing to a new exchange, with keys after
// its url and exchange, and returns it with a queue bound to "ok.#" there.
func boundSink(t *testing.T, b *amqptest.Broker, keys string) (*Sink, string) {
	t.Helper()
	ex := testkit.Unique(t, "ex")
	q := b.Queue(t, "out")
	b.DeleteExchangeAtEnd(t, ex)
	s := newSink(t, fmt.Sprintf("url = %q\nexchange = %q\n", b.URL, ex)+keys)
	openSink(t, s)
	if err := b.Ch.QueueBind(q, "ok.#", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	return s, q
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
	s, q := boundSink(t, b, `routing_key = "${route}"
message_id = "${id}"
variables = { route = "$.route", id = "$.id" }
`)
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

// TestJSONTemplateFailsAlone: a header or message_id whose template is a
// JSON template renders JSON or fails. An event it could not render (the
// path finds nothing, or a string that is not one JSON value) was
// published with an empty value; that record now fails alone,
// event-permanent, naming the template, and the others are delivered once.
func TestJSONTemplateFailsAlone(t *testing.T) {
	b := amqptest.Connect(t)
	s, q := boundSink(t, b, `routing_key = "ok.1"
message_id = '{"id": ${id}}'
headers = { meta = '{"n": ${n}}' }
variables = { id = "$.id", n = "$.n" }
`)
	for _, tc := range []struct {
		name, event, want string
	}{
		{"header, nothing found", `{"id":1}`, `header "meta" template: template: ${n} found nothing`},
		{"header, not one value", `{"id":1,"n":"1, \"x\": 2"}`, `header "meta" template: template: ${n} is`},
		{"message_id", `{"n":1}`, `message_id template: template: ${id} found nothing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := msgsOf(`{"id":1,"n":1}`, tc.event, `{"id":2,"n":{"v":2}}`)
			onlyFailed(t, s.Write(context.Background(), msgs), 1, tc.want)
			ds := b.Get(t, q)
			if len(ds) != 2 || string(ds[0].Body) != `{"n":0}` || string(ds[1].Body) != `{"n":2}` {
				t.Fatalf("delivered %d messages, want records 0 and 2 once", len(ds))
			}
			if ds[0].MessageId != `{"id": 1}` || ds[0].Headers["meta"] != `{"n": 1}` || ds[1].Headers["meta"] != `{"n": {"v":2}}` {
				t.Fatalf("delivered message_id %q, headers %v and %v", ds[0].MessageId, ds[0].Headers, ds[1].Headers)
			}
		})
	}
}

// TestOversizeBodyFailsAlone: a body over the broker's max_message_size
// (128 MiB by default on RabbitMQ 3.10; the broker closes the channel with
// 406 PRECONDITION_FAILED) fails alone, event-permanent, with the limit
// the broker gave; the others are delivered. Once the limit is known, such
// a body is refused before it is sent.
func TestOversizeBodyFailsAlone(t *testing.T) {
	b := amqptest.Connect(t)
	s, q := boundSink(t, b, `routing_key = "ok.1"
`)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	msgs := msgsOf(`{}`, `{}`, `{}`)
	msgs[1].Payload = bytes.Repeat([]byte{'x'}, 129<<20)
	onlyFailed(t, s.Write(ctx, msgs), 1, "over the broker's max_message_size (134217728 bytes)")
	// Record 0 may arrive twice: published before the refused body, it may
	// have been routed and not confirmed when the channel closed.
	got := bodies(t, b, q)
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	if seen[`{"n":0}`] == 0 || seen[`{"n":2}`] != 1 || len(seen) != 2 {
		t.Fatalf("delivered %d messages (%v), want records 0 and 2", len(got), seen)
	}

	// The limit is known now: the body is refused without closing a channel.
	msgs = msgsOf(`{}`, `{}`)
	msgs[0].Payload = bytes.Repeat([]byte{'x'}, 129<<20)
	onlyFailed(t, s.Write(ctx, msgs), 0, "over the broker's max_message_size")
	if got := bodies(t, b, q); len(got) != 1 || got[0] != `{"n":1}` {
		t.Fatalf("delivered %q, want record 1 once", got)
	}
}

// TestChannelCloseReasonReported: a channel the broker closes for another
// reason (here its exchange was deleted) fails the batch as retryable,
// with the broker's reason.
func TestChannelCloseReasonReported(t *testing.T) {
	b := amqptest.Connect(t)
	ex := testkit.Unique(t, "ex")
	b.DeleteExchangeAtEnd(t, ex)
	s := newSink(t, fmt.Sprintf(`url = %q
exchange = %q
routing_key = "r"
mandatory = false
`, b.URL, ex))
	openSink(t, s)
	if err := b.Ch.ExchangeDelete(ex, false, false); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), msgsOf(`{}`, `{}`))
	if component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), "NOT_FOUND - no exchange") {
		t.Fatalf("Write: (%s) %v, want retryable with the broker's reason", component.ClassOf(err), err)
	}
}

// TestMaxSizeRefused reads the broker's reasons for a body over its limit,
// and only those.
func TestMaxSizeRefused(t *testing.T) {
	for reason, want := range map[string]int64{
		"PRECONDITION_FAILED - message size 135266304 is larger than configured max size 134217728": 134217728,
		"PRECONDITION_FAILED - message size 600000000 is larger than max size 536870912":            536870912,
		"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x'":                         0,
	} {
		limit, ok := maxSizeRefused(fmt.Errorf("publish: %w", &amqp.Error{Code: 406, Reason: reason}))
		if limit != want || ok != (want > 0) {
			t.Errorf("%q: %d %v, want %d", reason, limit, ok, want)
		}
	}
	if _, ok := maxSizeRefused(&amqp.Error{Code: 404, Reason: "message size 2 is larger than max size 1"}); ok {
		t.Error("a 404 read as a size refusal")
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

// TestOversizeHeadersFailAlone: properties and headers go in one content
// header frame, which AMQP cannot split; one over the negotiated frame_max
// (128 KiB on RabbitMQ) made the broker close the whole connection
// (501 frame_too_large), failing the batch as retryable, and again on
// every retry, so the task's policy ended with the whole batch
// dead-lettered. That record now fails alone, event-permanent, before it
// is sent; the others are delivered once on the same connection, and
// headers that fill the frame exactly still go through.
func TestOversizeHeadersFailAlone(t *testing.T) {
	b := amqptest.Connect(t)
	s, q := boundSink(t, b, `routing_key = "ok.1"
`)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	c, err := s.connection(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	frameMax := c.conn.Config.FrameSize
	if frameMax <= 0 {
		t.Skipf("the broker set no frame_max")
	}

	msgs := msgsOf(`{}`, `{}`, `{}`)
	msgs[1].Headers = []message.Header{{Key: "big", Value: bytes.Repeat([]byte{'x'}, 200<<10)}}
	onlyFailed(t, s.Write(ctx, msgs), 1, "AMQP carries them in one frame")
	if got := bodies(t, b, q); len(got) != 2 || got[0] != `{"n":0}` || got[1] != `{"n":2}` {
		t.Fatalf("delivered %q, want records 0 and 2 once", got)
	}
	if c.isDead() {
		t.Fatal("the connection was closed")
	}

	// The largest header that fits is published; one byte more is refused.
	msgs = msgsOf(`{}`, `{}`)
	var p publishing
	if _, err := s.prepare(&p, &msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	p.pub.Headers = map[string]any{"big": ""}
	fit := frameMax - frameOverhead - headerFrameSize(&p)
	msgs[0].Headers = []message.Header{{Key: "big", Value: bytes.Repeat([]byte{'x'}, fit)}}
	msgs[1].Headers = []message.Header{{Key: "big", Value: bytes.Repeat([]byte{'x'}, fit+1)}}
	onlyFailed(t, s.Write(ctx, msgs), 1, "AMQP carries them in one frame")
	ds := b.Get(t, q)
	if len(ds) != 1 || string(ds[0].Body) != `{"n":0}` || len(ds[0].Headers["big"].(string)) != fit {
		t.Fatalf("delivered %d messages, want record 0 with its %d-byte header", len(ds), fit)
	}
	if c.isDead() {
		t.Fatal("the connection was closed")
	}
}

// TestDeletedExchangeDeclaredAgain: an exchange the sink had checked (or
// declared) and that is then deleted on the broker made every publish to
// it close the channel with 404 NOT_FOUND. The sink kept it as known, so
// each retry failed the same way, forever, and the whole batch went to the
// dead-letter queue once the policy gave up. The first failure now makes
// the sink check it again: with declare = true the retry declares it and
// is published.
func TestDeletedExchangeDeclaredAgain(t *testing.T) {
	for _, tc := range []struct{ name, exchange string }{
		{"fixed", "%s"},
		{"templated", "%s${suffix}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := amqptest.Connect(t)
			ex := testkit.Unique(t, "ex")
			b.DeleteExchangeAtEnd(t, ex)
			s := newSink(t, fmt.Sprintf(`url = %q
exchange = %q
routing_key = "r"
mandatory = false
variables = { suffix = "$.suffix" }
`, b.URL, fmt.Sprintf(tc.exchange, ex)))
			openSink(t, s)
			ctx := context.Background()
			if err := s.Write(ctx, msgsOf(`{"suffix":""}`)); err != nil {
				t.Fatal(err)
			}
			if err := b.Ch.ExchangeDelete(ex, false, false); err != nil {
				t.Fatal(err)
			}
			err := s.Write(ctx, msgsOf(`{"suffix":""}`))
			if component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), "NOT_FOUND") {
				t.Fatalf("first Write after the delete: (%s) %v, want retryable NOT_FOUND", component.ClassOf(err), err)
			}
			if err := s.Write(ctx, msgsOf(`{"suffix":""}`)); err != nil {
				t.Fatalf("the retry: %v, want the exchange declared again and the record published", err)
			}
		})
	}
}
