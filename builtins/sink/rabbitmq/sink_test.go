package rabbitmq

import (
	"context"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func newSink(t testing.TB, src string) *Sink {
	t.Helper()
	env := componenttest.Env(t, zerolog.InfoLevel, "sink")
	return componenttest.Build(t, Register, component.KindSink, "rabbitmq", src, env).(*Sink)
}

func openSink(t testing.TB, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func hostOf(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
}

// TestConformance publishes through a topic exchange bound to a queue the
// test reads, behind a proxy the suite cuts; an unroutable routing key is
// the poison record.
func TestConformance(t *testing.T) {
	b := amqptest.Connect(t)
	ex := testkit.Unique(t, "ex")
	q := b.Queue(t, "out")
	b.DeleteExchangeAtEnd(t, ex)
	if err := b.Ch.ExchangeDeclare(ex, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Ch.QueueBind(q, "ok.#", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	received := amqptest.Collect(t, b.URL, q)
	proxy := testkit.NewProxy(t, hostOf(b.URL))
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return newSink(t, fmt.Sprintf(`url = "amqp://guest:guest@%s/"
exchange = %q
routing_key = "${route}"
variables = { route = "$.data.route" }
dial_timeout = "2s"
`, proxy.Addr(), ex))
		},
		Payload: func(t testing.TB, i int) []byte {
			return fmt.Appendf(nil, `{"conformance":%q,"n":%d,"route":"ok.%d"}`, t.Name(), i, i)
		},
		Received: func(t testing.TB) [][]byte {
			var out [][]byte
			for _, d := range received() {
				out = append(out, d.Body)
			}
			return out
		},
		Ordered: true,
		Cut:     proxy.Cut,
		Restore: proxy.Restore,
		// The suite's poison replaces the payload, and routing reads the
		// source event: TestUnroutableIsolated checks the same thing.
	})
}

// TestUnroutableIsolated: in a batch, the one mandatory message no queue
// receives fails alone, event-permanent; the others are delivered.
func TestUnroutableIsolated(t *testing.T) {
	b := amqptest.Connect(t)
	s, q := boundSink(t, b, `routing_key = "${route}"
variables = { route = "$.route" }
`)
	var msgs []message.Message
	for i, route := range []string{"ok.1", "nowhere", "ok.2", "ok.3", "nowhere.either", "ok.4"} {
		// Same body for all: returns are matched by routing key and order.
		msgs = append(msgs, msg(fmt.Sprintf(`{"route":%q}`, route), `{"same":true}`, ""))
		msgs[i].Pos.Offset = int64(i)
	}
	err := s.Write(context.Background(), msgs)
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 2 || re.Errs[1] == nil || re.Errs[4] == nil {
		t.Fatalf("err %v", err)
	}
	for _, i := range []int{1, 4} {
		if c := component.ClassOf(re.Errs[i]); c != component.ClassEventPermanent || !strings.Contains(re.Errs[i].Error(), "unroutable") {
			t.Fatalf("record %d: %s %v", i, c, re.Errs[i])
		}
	}
	if ds := b.Get(t, q); len(ds) != 4 {
		t.Fatalf("%d messages delivered, want 4", len(ds))
	}
}

func msg(event, payload string, key string, hs ...message.Header) message.Message {
	return message.Message{Payload: []byte(payload), Event: []byte(event), Key: []byte(key), Headers: hs, Pos: message.Position{Stream: "s", Offset: 1}}
}

// TestPropertiesAndHeaders: persistent messages with the templated routing
// key, message id and headers, forwarded headers, content type.
func TestPropertiesAndHeaders(t *testing.T) {
	b := amqptest.Connect(t)
	q := testkit.Unique(t, "props")
	b.DeleteAtEnd(t, q)
	s := newSink(t, fmt.Sprintf(`url = %q
queue = %q
message_id = "${id}"
content_type = "application/json"
headers = { region = "${region}", via = "sluice" }
variables = { id = "$.id", region = "$.data.region" }
`, b.URL, q))
	openSink(t, s)
	ev := `{"id":"e-1","data":{"region":"eu"}}`
	if err := s.Write(context.Background(), []message.Message{msg(ev, `{"x":1}`, "k", message.Header{Key: "trace", Value: []byte("t-1")}, message.Header{Key: "via", Value: []byte("old")})}); err != nil {
		t.Fatal(err)
	}
	ds := b.Get(t, q)
	if len(ds) != 1 {
		t.Fatalf("%d messages", len(ds))
	}
	d := ds[0]
	if string(d.Body) != `{"x":1}` || d.MessageId != "e-1" || d.ContentType != "application/json" || d.DeliveryMode != 2 || d.RoutingKey != q {
		t.Fatalf("%+v", d)
	}
	if d.Headers["region"] != "eu" || d.Headers["via"] != "sluice" || d.Headers["trace"] != "t-1" {
		t.Fatalf("headers %v", d.Headers)
	}
}

// TestRecordKeyRoutes: without routing_key the record's key routes.
func TestRecordKeyRoutes(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "bykey")
	s := newSink(t, fmt.Sprintf("url = %q\n", b.URL))
	openSink(t, s)
	if err := s.Write(context.Background(), []message.Message{msg(`{}`, `{"a":1}`, q)}); err != nil {
		t.Fatal(err)
	}
	if ds := b.Get(t, q); len(ds) != 1 || string(ds[0].Body) != `{"a":1}` {
		t.Fatalf("%v", ds)
	}
}

// TestTemplatedExchange: a templated exchange is declared on first use;
// with declare = false a missing one fails only its records.
func TestTemplatedExchange(t *testing.T) {
	b := amqptest.Connect(t)
	base := testkit.Unique(t, "tx")
	b.DeleteExchangeAtEnd(t, base+"-eu")
	s := newSink(t, fmt.Sprintf(`url = %q
exchange = "%s-${region}"
routing_key = "r"
mandatory = false
variables = { region = "$.data.region" }
`, b.URL, base))
	openSink(t, s)
	if err := s.Write(context.Background(), []message.Message{msg(`{"data":{"region":"eu"}}`, `{}`, "")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ch.ExchangeDeclarePassive(base+"-eu", "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("the templated exchange was not declared: %v", err)
	}
	strict := newSink(t, fmt.Sprintf(`url = %q
exchange = "%s-${region}"
declare = false
variables = { region = "$.data.region" }
`, b.URL, base))
	openSink(t, strict)
	err := strict.Write(context.Background(), []message.Message{msg(`{"data":{"region":"eu"}}`, `{}`, "x"), msg(`{"data":{"region":"nowhere"}}`, `{}`, "x")})
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 2 {
		// eu exists but nothing is bound: mandatory returns it too.
		t.Fatalf("err %v", err)
	}
	if c := component.ClassOf(re.Errs[1]); c != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "does not exist") {
		t.Fatalf("missing exchange: %s %v", c, re.Errs[1])
	}
	if c := component.ClassOf(re.Errs[0]); c != component.ClassEventPermanent || !strings.Contains(re.Errs[0].Error(), "unroutable") {
		t.Fatalf("unroutable: %s %v", c, re.Errs[0])
	}
}

// TestStartFailures: bad credentials and a missing exchange with declare
// = false fail the task with what to change.
func TestStartFailures(t *testing.T) {
	url := testkit.RabbitMQ(t)
	bad := newSink(t, fmt.Sprintf("url = %q\nexchange = \"x\"", strings.Replace(url, "guest:guest@", "guest:nope@", 1)))
	err := bad.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused the login") || strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad credentials: %v", err)
	}
	missing := newSink(t, fmt.Sprintf("url = %q\nexchange = %q\ndeclare = false", url, testkit.Unique(t, "nope")))
	err = missing.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing exchange: %v", err)
	}
	missingQ := newSink(t, fmt.Sprintf("url = %q\nqueue = %q\ndeclare = false", url, testkit.Unique(t, "nope")))
	err = missingQ.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing queue: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ src, path, msg string }{
		{`url = "amqp://h/"` + "\nexchange = \"x-${nope}\"", "sink.exchange", "unknown variable \"nope\""},
		{`url = "amqp://h/"` + "\nexchange = \"x\"\nqueue = \"q\"", "sink.queue", "queue publishes through the default exchange"},
		{`url = "amqp://h/"` + "\nrouting_key = \"${r}\"\nvariables = { r = \"$.[\" }", "sink.variables.r", "JSONPATH_INVALID"},
	} {
		_, p := componenttest.Decode(t, Register, component.KindSink, "rabbitmq", tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.HasPrefix(probs[0].Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.src, probs)
		}
	}
}

// TestUnroutableMatchedByHeaders: a headers exchange routes by headers
// alone, so two messages with the same exchange, routing key and body can
// go one to a queue and one nowhere. The return of the second was matched
// to the first (returns were matched by exchange, key and body): the
// delivered record went to the dead-letter queue and the dropped one was
// reported delivered, and lost. Returns are now matched by headers and
// message_id too.
func TestUnroutableMatchedByHeaders(t *testing.T) {
	b := amqptest.Connect(t)
	ex := testkit.Unique(t, "ex")
	q := b.Queue(t, "out")
	b.DeleteExchangeAtEnd(t, ex)
	s := newSink(t, fmt.Sprintf(`url = %q
exchange = %q
exchange_type = "headers"
routing_key = "r"
`, b.URL, ex))
	openSink(t, s)
	if err := b.Ch.QueueBind(q, "", ex, false, amqp.Table{"x-match": "all", "route": "ok"}); err != nil {
		t.Fatal(err)
	}
	msgs := []message.Message{
		msg(`{}`, `{"same":true}`, "", message.Header{Key: "route", Value: []byte("ok")}),
		msg(`{}`, `{"same":true}`, "", message.Header{Key: "route", Value: []byte("nowhere")}),
	}
	msgs[1].Pos.Offset = 2
	err := s.Write(context.Background(), msgs)
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || re.Errs[1] == nil {
		t.Fatalf("Write: %v, want record 1 alone failed as unroutable", err)
	}
	if c := component.ClassOf(re.Errs[1]); c != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "unroutable") {
		t.Fatalf("record 1: %s %v", c, re.Errs[1])
	}
	if ds := b.Get(t, q); len(ds) != 1 || ds[0].Headers["route"] != "ok" {
		t.Fatalf("%d messages delivered, want record 0", len(ds))
	}
}
