package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/internal/floorbench"
	"github.com/sluicehq/sluice/runtime/message"
)

const benchBatch = 256

func benchMsgs(n int) []message.Message {
	msgs := make([]message.Message, n)
	for i := range msgs {
		p := fmt.Appendf(nil, `{"order_id":"o-%d","region":"eu-west","amount":129.5,"items":3,"email":"someone@example.com"}`, i)
		msgs[i] = message.Message{Payload: p, Event: p, Time: time.Now(), Pos: message.Position{Stream: "b", Offset: int64(i)}}
	}
	return msgs
}

// BenchmarkPublish writes messages in 256-message batches to a durable
// queue, persistent, mandatory and confirmed, waiting for each batch's
// confirms: through this sink (templates, confirms and returns matched per
// record) against the floor, the bare client the simplest fast way
// (publish the batch, wait for its deferred confirmations), in alternating
// rounds. Run with -benchtime Nx (N events in all).
func BenchmarkPublish(b *testing.B) {
	br := amqptest.Connect(b)
	msgs := benchMsgs(benchBatch)
	sluice := func(b *testing.B, n int) time.Duration {
		q := br.Queue(b, "bench")
		s := newSink(b, fmt.Sprintf("url = %q\nqueue = %q\n", br.URL, q))
		ctx := context.Background()
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer s.Close(ctx)
		start := time.Now()
		for done := 0; done < n; done += benchBatch {
			if err := s.Write(ctx, msgs[:min(benchBatch, n-done)]); err != nil {
				b.Fatal(err)
			}
		}
		d := time.Since(start)
		amqptest.DeleteQueue(br.URL, q)
		return d
	}
	floor := func(b *testing.B, n int) time.Duration {
		q := br.Queue(b, "bench")
		conn, err := amqp.Dial(br.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		dcs := make([]*amqp.DeferredConfirmation, 0, benchBatch)
		start := time.Now()
		for done := 0; done < n; done += benchBatch {
			dcs = dcs[:0]
			for i := range min(benchBatch, n-done) {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false,
					amqp.Publishing{Body: msgs[i].Payload, DeliveryMode: amqp.Persistent, Timestamp: msgs[i].Time})
				if err != nil {
					b.Fatal(err)
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				if ok, err := dc.WaitContext(ctx); !ok || err != nil {
					b.Fatal("not confirmed", err)
				}
			}
		}
		d := time.Since(start)
		amqptest.DeleteQueue(br.URL, q)
		return d
	}
	floorbench.Compare(b, 6, sluice, floor)
}
