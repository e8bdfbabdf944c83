package mqtt

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// silentBroker accepts MQTT connections and never acknowledges a publish:
// it counts, per connection, the QoS 1 and 2 messages in flight.
type silentBroker struct {
	ln net.Listener
	mu sync.Mutex
	// inflight counts unacknowledged publishes per connection.
	inflight []int
}

func startSilentBroker(t *testing.T) *silentBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &silentBroker{ln: ln}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			id := len(b.inflight)
			b.inflight = append(b.inflight, 0)
			b.mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				go func() { <-t.Context().Done(); c.Close() }()
				for {
					p, err := packets.ReadPacket(c)
					if err != nil {
						return
					}
					switch p := p.(type) {
					case *packets.ConnectPacket:
						ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
						if err := ack.Write(c); err != nil {
							return
						}
					case *packets.PublishPacket:
						if p.Qos > 0 {
							b.mu.Lock()
							b.inflight[id]++
							b.mu.Unlock()
						}
					case *packets.PingreqPacket:
						if err := packets.NewControlPacket(packets.Pingresp).Write(c); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return b
}

// most returns the most messages in flight on one connection, and the
// number in flight in all.
func (b *silentBroker) most() (most, all int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.inflight {
		most = max(most, n)
		all += n
	}
	return most, all
}

// A Write that ends with its context (an operator's replay cancelled, a
// shutdown) while its messages await their acknowledgement gives back
// their places in the max_inflight window: the messages must not stay in
// flight on the connection then, or the next Writes put more than
// max_inflight on it (past Mosquitto's limit, which drops QoS 2 messages
// while acknowledging them).
func TestCancelledWriteKeepsMaxInflightOnTheConnection(t *testing.T) {
	b := startSilentBroker(t)
	s := newSink(t, fmt.Sprintf("url = \"tcp://%s\"\ntopic = \"t\"\nqos = 2\nmax_inflight = 2\n", b.ln.Addr()))
	openSink(t, s)
	for round := 1; round <= 3; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Write(ctx, []message.Message{msg(`{}`, `1`), msg(`{}`, `2`)}) }()
		testkit.WaitFor(t, "the broker holding the round's messages", func() bool { _, all := b.most(); return all >= 2*round })
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Write: nil, though nothing was acknowledged")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Write did not end with its context")
		}
	}
	if most, _ := b.most(); most > 2 {
		t.Fatalf("%d messages in flight on one connection, max_inflight = 2", most)
	}
}
