package nats

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestParseAckMatchesTheClient reads real messages from the local server
// (its reply subjects are what parseAck meets) and checks that parseAck
// agrees with the client's Metadata on each.
func TestParseAckMatchesTheClient(t *testing.T) {
	fx := newFixture(t)
	fx.publish(t, "a", [][]byte{[]byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := fx.srv.JS.CreateOrUpdateConsumer(ctx, fx.stream, jetstream.ConsumerConfig{Durable: "meta", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		want, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseAck(m.Reply())
		if !ok {
			t.Fatalf("parseAck(%q) failed", m.Reply())
		}
		if got.seq != want.Sequence.Stream || got.delivered != want.NumDelivered || got.pending != want.NumPending || got.ts != want.Timestamp.UnixNano() {
			t.Fatalf("parseAck(%q) = %+v; the client reads %+v", m.Reply(), got, want)
		}
	}
	if n != 3 {
		t.Fatalf("fetched %d messages, want 3 (%v)", n, batch.Error())
	}
}

// TestParseAckSubjects covers both subject versions and what is refused.
func TestParseAckSubjects(t *testing.T) {
	for _, c := range []struct {
		reply string
		ok    bool
		want  ackMeta
	}{
		{"$JS.ACK.S.C.2.42.7.1700000000123000000.5", true, ackMeta{seq: 42, delivered: 2, pending: 5, ts: 1700000000123000000}},
		{"$JS.ACK._.HASH.S.C.1.43.8.1700000000123000001.0.rnd", true, ackMeta{seq: 43, delivered: 1, ts: 1700000000123000001}},
		{"$JS.ACK.dom.HASH.S.C.3.44.9.17.6", true, ackMeta{seq: 44, delivered: 3, pending: 6, ts: 17}},
		{"$JS.ACK.dom.HASH.S.C.3.44.9.17.6.rnd.more", true, ackMeta{seq: 44, delivered: 3, pending: 6, ts: 17}},
		{"$JS.ACK.S.C.x.42.7.1.5", true, ackMeta{seq: 42, ts: 1, pending: 5}}, // the client reads a non-number as 0
		{"$JS.ACK.S.C.2.42.7.1", false, ackMeta{}},
		{"$JS.ACK.a.b.S.C.2.42.7.1", false, ackMeta{}}, // 10 tokens: neither version
		{"_INBOX.abc", false, ackMeta{}},
		{"", false, ackMeta{}},
		{"$JS.ACK.", false, ackMeta{}},
	} {
		got, ok := parseAck(c.reply)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("parseAck(%q) = %+v, %v; want %+v, %v", c.reply, got, ok, c.want, c.ok)
		}
	}
}

// BenchmarkParseAck is the per-message cost of reading the metadata.
func BenchmarkParseAck(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		if _, ok := parseAck("$JS.ACK._.ACCHASH.ORDERS.orders-to-redis.1.1234567.1234567.1700000000123456789.98765.Xy12"); !ok {
			b.Fatal("not parsed")
		}
	}
}
