package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// newSource builds a source from TOML keys, as the loader would.
func newSource(t testing.TB, src string) *Source {
	t.Helper()
	env := componenttest.Env(t, zerolog.InfoLevel, "source")
	return componenttest.Build(t, Register, component.KindSource, "rabbitmq", src, env).(*Source)
}

func sourceTOML(url, queue, extra string) string {
	return fmt.Sprintf("url = %q\nqueue = %q\n%s", url, queue, extra)
}

// body returns data.body of an event.
func body(t testing.TB, m message.Message) []byte {
	var ev struct {
		Data struct {
			Body json.RawMessage `json:"body"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	return ev.Data.Body
}

func TestConformance(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "conf")
	componenttest.Source(t, componenttest.SourceSuite{
		New:        func(t testing.TB) component.Source { return newSource(t, sourceTOML(b.URL, q, "prefetch = 64")) },
		Produce:    func(t testing.TB, bodies [][]byte) { b.Publish(t, q, bodies...) },
		Body:       body,
		Redelivers: true,
		Ordered:    true,
	})
}

func openT(t testing.TB, s component.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func readN(t testing.TB, s component.Source, n int) ([]message.Message, []component.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var msgs []message.Message
	var batches []component.Batch
	for len(msgs) < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v (%d of %d read)", err, len(msgs), n)
		}
		msgs = append(msgs, b.Messages...)
		batches = append(batches, b)
	}
	return msgs, batches
}

// TestEvent checks the CloudEvent of a message with properties and
// headers of several AMQP types.
func TestEvent(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "ev")
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) // AMQP timestamps have whole seconds
	err := b.Ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
		Body: []byte(`{"order":"o-1","amount":12.5}`), MessageId: "m-1", CorrelationId: "c-1", ContentType: "application/json",
		Timestamp: ts, Headers: amqp.Table{"region": "eu", "n": int32(7), "ok": true, "nested": amqp.Table{"a": "b"}, "list": []any{"x", int64(2)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("not json \xff")})
	s := newSource(t, sourceTOML(b.URL, q, ""))
	openT(t, s)
	msgs, batches := readN(t, s, 2)
	var ev map[string]any
	if err := json.Unmarshal(msgs[0].Payload, &ev); err != nil {
		t.Fatalf("%s: %v", msgs[0].Payload, err)
	}
	data := ev["data"].(map[string]any)
	want := map[string]any{"id": "m-1", "type": EventType, "subject": q, "time": "2024-05-01T12:00:00.000Z", "specversion": "1.0"}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, ev[k], v, msgs[0].Payload)
		}
	}
	if ev["source"] != "amqp://127.0.0.1:5672/%2F/"+q {
		t.Errorf("source %v", ev["source"])
	}
	if data["queue"] != q || data["exchange"] != "" || data["routing_key"] != q || data["redelivered"] != false ||
		data["message_id"] != "m-1" || data["correlation_id"] != "c-1" || data["content_type"] != "application/json" || data["timestamp"] != float64(ts.UnixMilli()) {
		t.Errorf("data %v", data)
	}
	body := data["body"].(map[string]any)
	if body["order"] != "o-1" || body["amount"] != 12.5 {
		t.Errorf("body %v", body)
	}
	h := data["headers"].(map[string]any)
	if h["region"] != "eu" || h["n"] != float64(7) || h["ok"] != true || h["nested"].(map[string]any)["a"] != "b" || len(h["list"].([]any)) != 2 {
		t.Errorf("headers %v", h)
	}
	if v, _ := msgs[0].HeaderValue("n"); string(v) != "7" {
		t.Errorf("header n = %q", v)
	}
	if string(msgs[0].Key) != q || !msgs[0].Time.Equal(ts) {
		t.Errorf("key %q time %v", msgs[0].Key, msgs[0].Time)
	}
	var ev2 struct {
		ID   string
		Data struct{ Body string }
	}
	if err := json.Unmarshal(msgs[1].Payload, &ev2); err != nil {
		t.Fatalf("%s: %v", msgs[1].Payload, err)
	}
	if ev2.Data.Body != "not json \ufffd" || !strings.HasPrefix(ev2.ID, q+"-") {
		t.Errorf("second event %s", msgs[1].Payload)
	}
	for _, bt := range batches {
		bt.Ack(nil)
	}
}

// TestAckAfterDelivery: messages are acknowledged only when the engine
// acks their batch; what is not acked when the source closes comes back.
func TestAckAfterDelivery(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "ack")
	var bodies [][]byte
	for i := range 30 {
		bodies = append(bodies, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	b.Publish(t, q, bodies...)
	s := newSource(t, sourceTOML(b.URL, q, "prefetch = 10"))
	openT(t, s)
	msgs, batches := readN(t, s, 10)
	if len(msgs) != 10 {
		t.Fatalf("read %d messages with prefetch 10", len(msgs))
	}
	// Nothing more comes while the first ten are not acknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if b, err := s.Read(ctx); err == nil {
		t.Fatalf("read %d more messages beyond the prefetch", len(b.Messages))
	}
	cancel()
	for _, bt := range batches {
		bt.Ack(nil)
	}
	more, batches := readN(t, s, 5)
	// Ack only the first batch of these; close.
	batches[0].Ack(nil)
	acked := 10 + len(batches[0].Messages)
	_ = more
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the unacknowledged messages back in the queue", func() bool { return b.Depth(t, q) == 30-acked })
	s2 := newSource(t, sourceTOML(b.URL, q, "prefetch = 100"))
	openT(t, s2)
	rest, bs := readN(t, s2, 30-acked)
	for i, m := range rest {
		if got, want := string(body(t, m)), fmt.Sprintf(`{"n":%d}`, acked+i); got != want {
			t.Fatalf("message %d: %s, want %s", i, got, want)
		}
	}
	for _, bt := range bs {
		bt.Ack(nil)
	}
}

// TestDeclareAndBind: a missing queue is declared and bound to a missing
// exchange, both logged; with declare = false a missing queue fails the
// task with a message that says what to do.
func TestDeclareAndBind(t *testing.T) {
	b := amqptest.Connect(t)
	q := testkit.Unique(t, "decl")
	ex := testkit.Unique(t, "ex")
	b.DeleteAtEnd(t, q)
	b.DeleteExchangeAtEnd(t, ex)
	s := newSource(t, sourceTOML(b.URL, q, fmt.Sprintf("queue_type = \"quorum\"\nbindings = [{ exchange = %q, routing_key = \"eu.#\" }]", ex)))
	openT(t, s)
	b.PublishTo(t, ex, "eu.orders", nil, []byte(`{"r":"eu"}`))
	b.PublishTo(t, ex, "us.orders", nil, []byte(`{"r":"us"}`))
	b.PublishTo(t, ex, "eu.refunds", nil, []byte(`{"r":"eu2"}`))
	msgs, batches := readN(t, s, 2)
	if got := string(body(t, msgs[0])) + string(body(t, msgs[1])); got != `{"r":"eu"}{"r":"eu2"}` {
		t.Fatalf("got %s", got)
	}
	for _, bt := range batches {
		bt.Ack(nil)
	}

	missing := newSource(t, sourceTOML(b.URL, testkit.Unique(t, "missing"), "declare = false"))
	err := missing.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "declare = true") {
		t.Fatalf("missing queue: %v (class %s)", err, component.ClassOf(err))
	}
}

// TestBadCredentials: a refused login fails the task, saying what to fix,
// without the password.
func TestBadCredentials(t *testing.T) {
	url := testkit.RabbitMQ(t)
	bad := strings.Replace(url, "guest:guest@", "guest:wrong-secret@", 1)
	s := newSource(t, sourceTOML(bad, "q", ""))
	err := s.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused the login") {
		t.Fatalf("bad credentials: %v (class %s)", err, component.ClassOf(err))
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// TestReconnect: the connection is cut mid-stream; the source reconnects,
// every message arrives, and what was read before the cut without an ack
// comes again (marked redelivered).
func TestReconnect(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "cut")
	proxy := testkit.NewProxy(t, strings.TrimSuffix(strings.TrimPrefix(b.URL, "amqp://guest:guest@"), "/"))
	s := newSource(t, sourceTOML("amqp://guest:guest@"+proxy.Addr()+"/", q, "prefetch = 20\nheartbeat = \"1s\""))
	openT(t, s)
	const n = 200
	var bodies [][]byte
	for i := range n {
		bodies = append(bodies, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	b.Publish(t, q, bodies...)
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	cut := false
	redelivered := 0
	for len(seen) < n {
		bt, err := s.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d: %v", len(seen), n, err)
			}
			continue // the engine retries a failed Read
		}
		for _, m := range bt.Messages {
			seen[string(body(t, m))]++
			if strings.Contains(string(m.Payload), `"redelivered":true`) {
				redelivered++
			}
		}
		if !cut && len(seen) >= 50 {
			// Cut with this batch unacknowledged: it must come again.
			cut = true
			proxy.Cut()
			proxy.Restore()
			continue
		}
		bt.Ack(nil)
	}
	for i := range n {
		if seen[fmt.Sprintf(`{"n":%d}`, i)] == 0 {
			t.Fatalf("message %d never arrived", i)
		}
	}
	if redelivered == 0 {
		t.Fatal("the batch unacknowledged at the cut was not delivered again")
	}
	testkit.WaitFor(t, "the queue to be empty", func() bool { return b.Depth(t, q) == 0 })
}

// TestExclusiveStandby: with exclusive = true a second source waits
// (retryable) while the first holds the queue.
func TestExclusiveStandby(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "excl")
	first := newSource(t, sourceTOML(b.URL, q, "exclusive = true"))
	openT(t, first)
	second := newSource(t, sourceTOML(b.URL, q, "exclusive = true"))
	err := second.Open(context.Background())
	if err == nil || component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), "exclusively") {
		t.Fatalf("second exclusive consumer: %v", err)
	}
	_ = first.Close(context.Background())
	testkit.WaitFor(t, "the standby to take over", func() bool { return second.Open(context.Background()) == nil })
	_ = second.Close(context.Background())
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ src, path, msg string }{
		{`url = "http://x"` + "\nqueue = \"q\"", "source.url", "invalid AMQP URL"},
		{`url = "amqp://u:secret@h/"` + "\nqueue = \"amq.x\"", "source.queue", "queue names starting with \"amq.\""},
		{`url = "amqp://h/"` + "\nqueue = \"q\"\nprefetch = 0", "source.prefetch", "value 0 is below the minimum"},
		{`url = "amqp://h/"`, "source", "missing required key \"queue\""},
	} {
		_, p := componenttest.Decode(t, Register, component.KindSource, "rabbitmq", tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.HasPrefix(probs[0].Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.src, probs)
		}
		for _, pr := range probs {
			if strings.Contains(pr.Msg, "secret") {
				t.Errorf("problem shows the password: %s", pr.Msg)
			}
		}
	}
}

var _ = errors.New
