package rabbitmq

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// stallProxy forwards one AMQP connection to the broker and, once stalled,
// stops reading what the client sends while still passing on what the
// broker sends (heartbeats): what a broker does to a publishing connection
// it blocked under a memory or disk alarm.
type stallProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	stalled bool
	release chan struct{}
	conns   []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, release: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(c, up) }()
			go p.upstream(c, up)
		}
	}()
	t.Cleanup(func() {
		close(p.release)
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *stallProxy) upstream(c, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			<-p.release
			return
		}
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// TestWriteToBlockedBrokerEndsWithItsContext: a broker that blocks a
// publishing connection (a memory or disk alarm) stops reading from it,
// and keeps sending heartbeats. A Write whose messages did not fit in the
// socket buffers waited in the client's socket write, which ignores the
// context, until the broker read again: the engine's shutdown deadline
// could not end it, and SIGTERM left the process hanging. It now returns a
// retryable error once its context ends.
func TestWriteToBlockedBrokerEndsWithItsContext(t *testing.T) {
	b := amqptest.Connect(t)
	p := newStallProxy(t, hostOf(b.URL))
	ex := testkit.Unique(t, "ex")
	b.DeleteExchangeAtEnd(t, ex)
	s := newSink(t, fmt.Sprintf("url = %q\nexchange = %q\nrouting_key = \"r\"\nmandatory = false\nheartbeat = \"600s\"\n",
		"amqp://guest:guest@"+p.ln.Addr().String()+"/", ex))
	openSink(t, s)
	p.stall()

	body := bytes.Repeat([]byte{'x'}, 512<<10)
	msgs := make([]message.Message, 64) // 32 MiB: more than the socket buffers hold
	for i := range msgs {
		msgs[i] = msg(`{}`, "", "")
		msgs[i].Payload = body
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, msgs) }()
	select {
	case err := <-done:
		if component.ClassOf(err) != component.ClassRetryable {
			t.Fatalf("Write: (%s) %v, want retryable", component.ClassOf(err), err)
		}
	case <-time.After(testkit.Scale(20 * time.Second)):
		t.Fatal("Write did not return after its context ended")
	}
}
