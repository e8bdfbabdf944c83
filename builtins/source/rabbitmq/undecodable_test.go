package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// syncBuffer is a log destination safe for the source's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// deepHeaders returns a header table nested depth levels deep: amqp091-go
// refuses to read more than 32.
func deepHeaders(depth int) amqp.Table {
	h := amqp.Table{"leaf": "x"}
	for range depth {
		h = amqp.Table{"a": h}
	}
	return h
}

// publishConfirmed publishes p to queue and waits for the broker's confirm.
func publishConfirmed(t *testing.T, b *amqptest.Broker, queue string, p amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	dc, err := b.Ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, p)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("publish not confirmed: %v", err)
	}
}

// TestUndecodableMessageStopsTheTask: a message the AMQP client cannot
// decode (headers nested 40 levels deep) makes amqp091-go close the
// connection each time the broker delivers it. Each Read returns after
// one such connection with a retryable error that gives the close reason
// (the engine waits before the next Read, which reconnects: no hot loop);
// the third in a row stops the task with an error that names the queue
// and says what to do; the message and the one behind it stay in the
// queue.
func TestUndecodableMessageStopsTheTask(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "deep")
	publishConfirmed(t, b, q, amqp.Publishing{Body: []byte(`{"n":1}`), Headers: deepHeaders(40), DeliveryMode: amqp.Persistent})
	b.Publish(t, q, []byte(`{"n":2}`))

	s := newSource(t, sourceTOML(b.URL, q, ""))
	var logs syncBuffer
	s.log = zerolog.New(&logs)
	openT(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var retried []error
	var stop error
	for stop == nil {
		bt, err := s.Read(ctx)
		switch {
		case err == nil:
			t.Fatalf("read %d messages: nothing can be read behind the undecodable message", len(bt.Messages))
		case ctx.Err() != nil:
			t.Fatalf("no task error after %d retryable ones: %v", len(retried), err)
		case component.ClassOf(err) == component.ClassTaskPermanent:
			stop = err
		default:
			retried = append(retried, err)
			if len(retried) >= maxUndecodable {
				t.Fatalf("%d retryable errors and no task error: %v", len(retried), retried)
			}
		}
	}
	if len(retried) != maxUndecodable-1 {
		t.Fatalf("%d retryable errors before the task error, want %d: %v", len(retried), maxUndecodable-1, retried)
	}
	for _, err := range retried {
		// The reason of the close, not only "delivery stream ended".
		if !undecodable(err) || !strings.Contains(err.Error(), amqp.ErrSyntax.Reason) || !strings.Contains(err.Error(), q) {
			t.Errorf("retryable error without the close reason: %v", err)
		}
	}
	msg := stop.Error()
	for _, want := range []string{
		fmt.Sprintf("queue %q", q),
		"Exception (501)",
		amqp.ErrSyntax.Reason,
		"nested deeper than 32 levels",
		"nothing is lost",
		"rabbitmqadmin get queue=" + q + " ackmode=reject_requeue_false",
		"x-delivery-limit",
		"resume the task",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("task error lacks %q: %s", want, msg)
		}
	}
	var ae *amqp.Error
	if !errors.As(stop, &ae) || ae.Code != amqp.FrameError {
		t.Errorf("task error does not wrap the AMQP error: %v", stop)
	}
	if strings.Contains(logs.String(), `"delivery stream ended"`) || !strings.Contains(logs.String(), "invalid field or value inside of a frame") {
		t.Errorf("the log does not give the close reason:\n%s", logs.String())
	}
	if got := s.m.reconnects.Value(); got != maxUndecodable-1 {
		t.Errorf("%v reconnects for %d Reads, want one per Read after the first", got, maxUndecodable)
	}

	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Nothing was taken off the queue: both messages are ready again.
	testkit.WaitFor(t, "both messages back in the queue", func() bool { return b.Depth(t, q) == 2 })
}

// TestUndecodableBehindReadableMessages: with readable messages ahead of
// the undecodable one in the prefetch window, the connection closes
// before their batch is acknowledged and they come again; the source
// still stops after maxUndecodable closings, and every message is either
// acknowledged or still in the queue.
func TestUndecodableBehindReadableMessages(t *testing.T) {
	b := amqptest.Connect(t)
	q := b.Queue(t, "deepmid")
	b.Publish(t, q, []byte(`{"n":0}`))
	publishConfirmed(t, b, q, amqp.Publishing{Body: []byte(`{"n":1}`), Headers: deepHeaders(40), DeliveryMode: amqp.Persistent})
	b.Publish(t, q, []byte(`{"n":2}`))

	s := newSource(t, sourceTOML(b.URL, q, "prefetch = 10"))
	openT(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var bts []component.Batch
	var stop error
	for reads := 0; stop == nil; reads++ {
		if reads > 3*maxUndecodable {
			t.Fatalf("%d Reads and no task error", reads)
		}
		bt, err := s.Read(ctx)
		switch {
		case err == nil:
			for _, m := range bt.Messages {
				if got := string(body(t, m)); got != `{"n":0}` {
					t.Fatalf("read %s: only the message ahead of the undecodable one can be read", got)
				}
			}
			bts = append(bts, bt)
			bt.Ack(nil) // the engine acks once delivered; the channel may be gone by then
		case ctx.Err() != nil:
			t.Fatalf("no task error: %v", err)
		case component.ClassOf(err) == component.ClassTaskPermanent:
			stop = err
		}
	}
	if !strings.Contains(stop.Error(), fmt.Sprintf("queue %q", q)) {
		t.Fatalf("task error: %v", stop)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// {"n":0} may have been acknowledged on a connection still open; the
	// other two stay.
	testkit.WaitFor(t, "the messages back in the queue", func() bool {
		d := b.Depth(t, q)
		return d == 3 || d == 2 && len(bts) > 0
	})
}

func TestUndecodable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrSyntax.Error()}, true},
		{closeReason("connection closed", &amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrSyntax.Error()}, nil), true},
		{&amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrFrame.Error()}, true},
		{&amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrFrameTooLarge.Error()}, true},
		// A lost socket is reported with the same code.
		{&amqp.Error{Code: amqp.FrameError, Reason: "EOF"}, false},
		{&amqp.Error{Code: amqp.FrameError, Reason: "read tcp 127.0.0.1:1->127.0.0.1:5672: read: connection reset by peer"}, false},
		// The broker could not parse what the client sent: not a message.
		{&amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrSyntax.Error(), Server: true}, false},
		{&amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - broker forced connection closure"}, false},
		{errors.New("delivery stream ended"), false},
		{nil, false},
	} {
		if got := undecodable(tc.err); got != tc.want {
			t.Errorf("undecodable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
