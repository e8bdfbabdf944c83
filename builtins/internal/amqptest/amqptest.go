// Package amqptest helps tests talk to the local RabbitMQ: a connection
// closed at the end of the test, per-test queues deleted at the end, and
// publishing and reading messages outside Sluice. Only test binaries import
// it.
package amqptest

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Broker is a test's connection to RabbitMQ.
type Broker struct {
	URL  string
	Conn *amqp.Connection
	Ch   *amqp.Channel
}

// Connect returns a connection to the local RabbitMQ (skipping or failing
// as testkit.RabbitMQ does when it is down), closed at the end of the test.
func Connect(t testing.TB) *Broker {
	t.Helper()
	url := testkit.RabbitMQ(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &Broker{URL: url, Conn: conn, Ch: ch}
}

// Queue declares a durable per-test queue and deletes it at the end of the
// test; it returns the name.
func (b *Broker) Queue(t testing.TB, prefix string) string {
	t.Helper()
	name := testkit.Unique(t, prefix)
	if _, err := b.Ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	b.DeleteAtEnd(t, name)
	return name
}

// DeleteAtEnd deletes queue at the end of the test (on a fresh connection:
// the test's own may be closed by then).
func (b *Broker) DeleteAtEnd(t testing.TB, queue string) {
	t.Cleanup(func() { DeleteQueue(b.URL, queue) })
}

// DeleteQueue deletes queue, ignoring errors.
func DeleteQueue(url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
	}
}

// DeleteExchangeAtEnd deletes exchange at the end of the test.
func (b *Broker) DeleteExchangeAtEnd(t testing.TB, exchange string) {
	t.Cleanup(func() {
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(exchange, false, false)
		}
	})
}

// Publish publishes bodies to queue through the default exchange,
// persistent, and waits for the broker's confirms.
func (b *Broker) Publish(t testing.TB, queue string, bodies ...[]byte) {
	t.Helper()
	b.PublishTo(t, "", queue, nil, bodies...)
}

// PublishTo publishes bodies to exchange with key and headers and waits
// for the broker's confirms.
func (b *Broker) PublishTo(t testing.TB, exchange, key string, headers amqp.Table, bodies ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var dcs []*amqp.DeferredConfirmation
	for _, body := range bodies {
		dc, err := b.Ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false,
			amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent, Headers: headers})
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
}

// Get takes every message of queue available now (acknowledging them) and
// returns them.
func (b *Broker) Get(t testing.TB, queue string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := b.Ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %q: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// Depth returns the number of ready messages in queue.
func (b *Broker) Depth(t testing.TB, queue string) int {
	t.Helper()
	ch, err := b.Conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %q: %v", queue, err)
	}
	return q.Messages
}

// Collect consumes queue (auto-ack) on a connection of its own until the
// end of the test, and returns a function that returns every delivery
// received so far.
func Collect(t testing.TB, url, queue string) func() []amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []amqp.Delivery, 1)
	got <- nil
	go func() {
		for d := range ds {
			all := <-got
			got <- append(all, d)
		}
	}()
	return func() []amqp.Delivery {
		all := <-got
		got <- all
		return append([]amqp.Delivery(nil), all...)
	}
}
