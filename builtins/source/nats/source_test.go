package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func open(t *testing.T, s *Source) *Source {
	t.Helper()
	if err := s.Open(natstest.Ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func read(t *testing.T, s *Source) component.Batch {
	t.Helper()
	b, err := s.Read(natstest.Ctx(t))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

func TestEventFormat(t *testing.T) {
	fx := newFixture(t)
	subj := fx.subject + ".eu"
	m := nats.NewMsg(subj)
	m.Data = []byte(` {"order":"o-1","amount":12.5} `)
	m.Header.Add("b-multi", "one")
	m.Header.Add("b-multi", "two")
	m.Header.Set("a-single", `q"uote`)
	if _, err := fx.srv.JS.PublishMsg(natstest.Ctx(t), m); err != nil {
		t.Fatal(err)
	}
	fx.srv.Publish(t, subj, [][]byte{[]byte("not json")})
	s := open(t, fx.build(t, fx.srv.URL, ""))
	var got []component.Batch
	n := 0
	for n < 2 {
		b := read(t, s)
		got = append(got, b)
		n += len(b.Messages)
	}
	msgs := got[0].Messages
	if len(got) > 1 {
		msgs = append(msgs, got[1].Messages...)
	}
	first := msgs[0]
	var ev map[string]any
	if err := json.Unmarshal(first.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	ts := ev["time"].(string)
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Fatalf("time %q", ts)
	}
	want := fmt.Sprintf(`{"specversion":"1.0","id":"%[1]s-0-1","source":"nats://%[2]s/%[1]s","type":"sluice.nats.message","datacontenttype":"application/json; charset=utf-8","subject":%[3]q,"time":%[4]q,"data":{"stream":%[1]q,"subject":%[3]q,"sequence":1,"timestamp":%[5]d,"headers":{"a-single":"q\"uote","b-multi":["one","two"]},"value":{"order":"o-1","amount":12.5}}}`,
		fx.stream, fx.srv.Addr, subj, ts, first.Time.UnixMilli())
	if string(first.Payload) != want {
		t.Fatalf("event\n got %s\nwant %s", first.Payload, want)
	}
	if string(first.Key) != subj || first.Pos.Stream != fx.stream || first.Pos.Offset != 1 || first.Pos.String() != fx.stream+"-0-1" {
		t.Fatalf("key %q pos %v", first.Key, first.Pos)
	}
	if len(first.Headers) != 3 || first.Headers[0].Key != "a-single" || string(first.Headers[2].Value) != "two" {
		t.Fatalf("headers %v", first.Headers)
	}
	if cap(first.Payload) != len(first.Payload) {
		t.Fatal("payload has spare capacity")
	}
	if v := decode(t, msgs[1]).Data.Value; string(v) != `"not json"` {
		t.Fatalf("non-JSON body became %s", v)
	}
	for _, b := range got {
		if b.Lane != "nats:"+fx.stream+"/d" {
			t.Fatalf("lane %q", b.Lane)
		}
		b.Ack(nil)
	}
}

func TestValueFormats(t *testing.T) {
	for format, want := range map[string]string{"text": `"{\"a\":1}"`, "base64": `"eyJhIjoxfQ=="`, "json": `{"a":1}`} {
		t.Run(format, func(t *testing.T) {
			fx := newFixture(t)
			fx.publish(t, "x", [][]byte{[]byte(`{"a":1}`)})
			s := open(t, fx.build(t, fx.srv.URL, fmt.Sprintf("value_format = %q\n", format)))
			b := read(t, s)
			if v := decode(t, b.Messages[0]).Data.Value; string(v) != want {
				t.Fatalf("value %s, want %s", v, want)
			}
			b.Ack(nil)
		})
	}
}

func TestMaxEventSize(t *testing.T) {
	fx := newFixture(t)
	fx.publish(t, "x", [][]byte{[]byte(`"` + strings.Repeat("x", 2000) + `"`)})
	env := componenttest.Env(t, 0, "source")
	env.MaxEvent = 1000
	s := open(t, componenttest.Build(t, Register, component.KindSource, "nats", fx.config(fx.srv.URL, ""), env).(*Source))
	b := read(t, s)
	if m := b.Messages[0]; m.Err == nil || !strings.Contains(m.Err.Error(), "max_event_size") || len(m.Payload) != 2002 {
		t.Fatalf("oversize event: err %v, payload %d bytes", m.Err, len(m.Payload))
	}
	b.Ack(nil)
}

func TestCreatesStreamAndDurable(t *testing.T) {
	srv := natstest.Local(t)
	fx := &fixture{srv: srv, stream: natstest.StreamName(t, "new"), durable: "made"}
	fx.subject = "sluice.test." + fx.stream
	srv.DeleteAtEnd(t, fx.stream)
	s := open(t, fx.build(t, srv.URL, fmt.Sprintf("subjects = [%q]\nmax_ack_pending = 77\nstart = \"new\"\n", fx.subject+".>")))
	c, err := srv.JS.Consumer(natstest.Ctx(t), fx.stream, "made")
	if err != nil {
		t.Fatalf("durable not created: %v", err)
	}
	cfg := c.CachedInfo().Config
	if cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.MaxAckPending != 77 || cfg.AckWait != 30*time.Second || cfg.DeliverPolicy != jetstream.DeliverNewPolicy {
		t.Fatalf("durable config %+v", cfg)
	}
	fx.publish(t, "a", [][]byte{[]byte(`1`)})
	b := read(t, s)
	b.Ack(nil)
	// A second source uses the existing stream and durable as they are.
	open(t, fx.build(t, srv.URL, fmt.Sprintf("subjects = [%q]\nmax_ack_pending = 5\n", fx.subject+".>")))
}

func TestStartFailed(t *testing.T) {
	srv := natstest.Local(t)
	missing := natstest.StreamName(t, "missing")
	fx := newFixture(t)
	ctx := natstest.Ctx(t)
	if _, err := fx.srv.JS.CreateOrUpdateConsumer(ctx, fx.stream, jetstream.ConsumerConfig{Durable: "all", AckPolicy: jetstream.AckAllPolicy}); err != nil {
		t.Fatal(err)
	}
	auth := natstest.AuthServer(t, "sluice", "right")
	cases := map[string]struct{ cfg, want string }{
		"missing stream, create off": {fmt.Sprintf("url = %q\nstream = %q\ncreate = false\n", srv.URL, missing),
			fmt.Sprintf(`stream %q does not exist on %s: create it, or set create = true and subjects to have Sluice create it`, missing, srv.URL)},
		"missing stream, no subjects": {fmt.Sprintf("url = %q\nstream = %q\n", srv.URL, missing),
			"create it, or set subjects (e.g. [\"orders.>\"]) so that Sluice can create it"},
		"missing durable, create off": {fmt.Sprintf("url = %q\nstream = %q\ndurable = \"nope\"\ncreate = false\n", srv.URL, fx.stream),
			`durable consumer "nope" does not exist on stream`},
		"durable acking all": {fmt.Sprintf("url = %q\nstream = %q\ndurable = \"all\"\n", srv.URL, fx.stream),
			"needs ack_policy explicit; use another durable name"},
		"bad password": {fmt.Sprintf("url = %q\nuser = \"sluice\"\npassword = \"wrong\"\nstream = \"S\"\n", auth.URL),
			"the server refused the credentials; check user/password"},
		"no password": {fmt.Sprintf("url = %q\nstream = \"S\"\n", auth.URL),
			"the server refused the credentials"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			env := componenttest.Env(t, 0, "source")
			s := componenttest.Build(t, Register, component.KindSource, "nats", c.cfg, env).(*Source)
			err := s.Open(natstest.Ctx(t))
			defer s.Close(context.Background())
			if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v (class %s)\nwant task-permanent: %s", err, component.ClassOf(err), c.want)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestUnreachableIsRetryable(t *testing.T) {
	proxy := testkit.NewProxy(t, "127.0.0.1:1")
	proxy.Cut()
	s := componenttest.Build(t, Register, component.KindSource, "nats", fmt.Sprintf("url = \"nats://%s\"\nstream = \"S\"\nconnect_timeout = \"1s\"\n", proxy.Addr()), componenttest.Env(t, 0, "source")).(*Source)
	err := s.Open(natstest.Ctx(t))
	if err == nil || component.ClassOf(err) != component.ClassRetryable {
		t.Fatalf("Open: %v, want retryable", err)
	}
	_ = s.Close(context.Background())
}

// TestMaxAckPendingHoldsBack checks the backpressure: with nothing
// acknowledged, the server hands out no more than max_ack_pending
// messages; acknowledging lets the rest come.
func TestMaxAckPendingHoldsBack(t *testing.T) {
	fx := newFixture(t)
	const total, limit = 100, 10
	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "%d", i)
	}
	fx.publish(t, "x", bodies)
	s := open(t, fx.build(t, fx.srv.URL, fmt.Sprintf("max_ack_pending = %d\nmax_batch = 5\n", limit)))
	var held []component.Batch
	n := 0
	for n < limit {
		b := read(t, s)
		held = append(held, b)
		n += len(b.Messages)
	}
	ackPending, pending := fx.srv.AckPending(t, fx.stream, fx.durable)
	if ackPending != limit || pending != total-limit || n != limit {
		t.Fatalf("read %d; server: %d unacknowledged, %d not delivered; want %d and %d", n, ackPending, pending, limit, total-limit)
	}
	for _, b := range held {
		b.Ack(nil)
	}
	for n < total {
		b := read(t, s)
		n += len(b.Messages)
		b.Ack(nil)
	}
	testkit.WaitFor(t, "every message acknowledged", func() bool {
		a, p := fx.srv.AckPending(t, fx.stream, fx.durable)
		return a == 0 && p == 0
	})
}

func TestOrderWithoutRedelivery(t *testing.T) {
	fx := newFixture(t)
	const total = 1000
	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "%d", i)
	}
	fx.publish(t, "x", bodies)
	s := open(t, fx.build(t, fx.srv.URL, "max_batch = 64\n"))
	next := 0
	for next < total {
		b := read(t, s)
		for _, m := range b.Messages {
			if v := string(decode(t, m).Data.Value); v != fmt.Sprint(next) {
				t.Fatalf("read %s, want %d", v, next)
			}
			next++
		}
		b.Ack(nil)
	}
}

// TestHeldMessagesAreNotRedelivered holds a batch unacknowledged for
// several ack_waits, as a sink being retried would: the source keeps
// telling the server it is in progress, so no message is delivered again.
func TestHeldMessagesAreNotRedelivered(t *testing.T) {
	fx := newFixture(t)
	fx.publish(t, "x", [][]byte{[]byte("1"), []byte("2")})
	s := open(t, fx.build(t, fx.srv.URL, "ack_wait = \"1s\"\n"))
	b := read(t, s)
	start := time.Now()
	// Time is the subject here: wait three ack_waits.
	testkit.WaitFor(t, "three ack_waits to pass", func() bool { return time.Since(start) > 3*time.Second })
	c, err := fx.srv.JS.Consumer(natstest.Ctx(t), fx.stream, fx.durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(natstest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d messages were delivered again while held", info.NumRedelivered)
	}
	b.Ack(nil)
}

func TestPauseKeepsAndResumes(t *testing.T) {
	fx := newFixture(t)
	fx.publish(t, "x", [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	s := open(t, fx.build(t, fx.srv.URL, "max_batch = 1\n"))
	b := read(t, s)
	// Decoded before the acknowledgement: the source reuses a batch's
	// memory once it is acknowledged.
	seen := map[string]bool{string(decode(t, b.Messages[0]).Data.Value): true}
	s.Pause()
	b.Ack(nil)
	s.Resume()
	for len(seen) < 3 {
		b := read(t, s)
		seen[string(decode(t, b.Messages[0]).Data.Value)] = true
		b.Ack(nil)
	}
	testkit.WaitFor(t, "every message acknowledged", func() bool {
		a, p := fx.srv.AckPending(t, fx.stream, fx.durable)
		return a == 0 && p == 0
	})
}

func TestDeletedDurableStopsTheTask(t *testing.T) {
	fx := newFixture(t)
	s := open(t, fx.build(t, fx.srv.URL, ""))
	if err := fx.srv.JS.DeleteConsumer(natstest.Ctx(t), fx.stream, fx.durable); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(natstest.Ctx(t))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("Read after the durable was deleted: %v", err)
	}
}

// TestLateSecondAckIsIgnored acknowledges a batch twice, the second time
// (a nack) after the source reused the batch's memory for the next batch:
// the second call must not touch the next batch's messages, which are then
// acknowledged once and never delivered again.
func TestLateSecondAckIsIgnored(t *testing.T) {
	fx := newFixture(t)
	fx.publish(t, "x", [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	s := open(t, fx.build(t, fx.srv.URL, "max_batch = 1\n"))
	first := read(t, s)
	first.Ack(nil)
	second := read(t, s)
	first.Ack(errors.New("a late second call"))
	second.Ack(nil)
	third := read(t, s)
	third.Ack(nil)
	// Had the late call nacked the second batch's message, the durable's
	// acknowledgement floor would stay below it.
	c, err := fx.srv.JS.Consumer(natstest.Ctx(t), fx.stream, fx.durable)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	testkit.WaitFor(t, "the three messages acknowledged in order", func() bool {
		info, err = c.Info(natstest.Ctx(t))
		return err == nil && info.AckFloor.Stream == 3 && info.NumAckPending == 0
	})
	if info.NumRedelivered != 0 {
		t.Fatalf("%d messages were delivered again", info.NumRedelivered)
	}
}
