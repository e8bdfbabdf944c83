package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/internal/floorbench"
)

// benchBody is a typical ~110-byte JSON order.
func benchBody(i int) []byte {
	return fmt.Appendf(nil, `{"order_id":"o-%d","region":"eu-west","amount":129.5,"items":3,"email":"someone@example.com"}`, i)
}

// fill publishes n messages to a fresh queue.
func fill(b *testing.B, br *amqptest.Broker, n int) string {
	q := br.Queue(b, "bench")
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		bodies := make([][]byte, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			bodies = append(bodies, benchBody(j))
		}
		br.Publish(b, q, bodies...)
	}
	return q
}

// BenchmarkConsume reads messages from a full queue with prefetch 1000 and
// acknowledges each batch at once, as the engine does after delivery:
// through this source (CloudEvent encoding, one multiple ack per batch)
// against the floor, the bare client with the same discipline (one
// multiple ack per batch of what is delivered), in alternating rounds.
// Run with -benchtime Nx (N events in all).
func BenchmarkConsume(b *testing.B) {
	br := amqptest.Connect(b)
	sluice := func(b *testing.B, n int) time.Duration {
		q := fill(b, br, n)
		s := newSource(b, sourceTOML(br.URL, q, "prefetch = 1000"))
		ctx := context.Background()
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer s.Close(ctx)
		start := time.Now()
		for got := 0; got < n; {
			bt, err := s.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += len(bt.Messages)
			bt.Ack(nil)
		}
		return time.Since(start)
	}
	floor := func(b *testing.B, n int) time.Duration {
		q := fill(b, br, n)
		conn, err := amqp.Dial(br.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		_ = ch.Qos(1000, 0, false)
		ds, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for got := 0; got < n; {
			d := <-ds
			last := d.DeliveryTag
			got++
		more:
			for k := 1; k < maxBatch; k++ {
				select {
				case d := <-ds:
					last = d.DeliveryTag
					got++
				default:
					break more
				}
			}
			if err := ch.Ack(last, true); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	floorbench.Compare(b, 6, sluice, floor)
}

// BenchmarkEncode measures wrapping one delivery into its CloudEvent and
// Message, the way Read does it for a 500-message batch: ns/op and
// allocs/op are per message, the CPU the source adds to the client's.
func BenchmarkEncode(b *testing.B) {
	s := newSource(b, sourceTOML("amqp://guest:guest@127.0.0.1:5672/", "orders", ""))
	ds := make([]amqp.Delivery, maxBatch)
	for i := range ds {
		ds[i] = amqp.Delivery{Body: benchBody(i), RoutingKey: "orders.eu", Exchange: "orders", DeliveryTag: uint64(i + 1),
			Headers: amqp.Table{"trace-id": "4bf92f3577b34da6a3ce929d0e0e4736"}}
	}
	ss := &session{idPrefix: []byte("orders-abc1-")}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(ds) {
		n := min(len(ds), b.N-done)
		if bt := s.batch(ss, ds[:n]); len(bt.Messages) != n {
			b.Fatal("short batch")
		}
	}
}
