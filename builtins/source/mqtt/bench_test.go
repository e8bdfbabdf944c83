package mqtt

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/builtins/internal/floorbench"
	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// BenchmarkConsume reads QoS 1 messages waiting in a persistent session and
// acknowledges them in order after they were handed over: through this
// source (CloudEvent encoding, acks per batch in arrival order) against
// the floor, a bare paho client with manual acks whose handler queues each
// message for a goroutine that acknowledges them in order, in alternating
// rounds. A throwaway Mosquitto with no limit on queued messages and its
// default in-flight window (20), which makes the rate a matter of round
// trips, then a window of 1000. Run with -benchtime Nx (N events in all).
func BenchmarkConsume(b *testing.B) {
	for _, window := range []int{20, 1000} {
		b.Run(fmt.Sprintf("inflight=%d", window), func(b *testing.B) { benchConsume(b, window) })
	}
}

func benchConsume(b *testing.B, window int) {
	url := mqtttest.Mosquitto(b, "allow_anonymous true", "max_queued_messages 0", fmt.Sprintf("max_inflight_messages %d", window))
	pub := mqtttest.Connect(b, url)
	round := 0
	// prepare makes a session holding n messages and returns its id and
	// topic.
	prepare := func(b *testing.B, n int) (string, string) {
		round++
		id, topic := fmt.Sprintf("bench-%d", round), fmt.Sprintf("bench/%d", round)
		c := mqtttest.ConnectID(b, url, id, false)
		if tok := c.C.Subscribe(topic, 1, nil); !tok.WaitTimeout(testkit.DefaultWait) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		c.C.Disconnect(100)
		const chunk = 1000
		for i := 0; i < n; i += chunk {
			var bodies [][]byte
			for j := i; j < min(i+chunk, n); j++ {
				bodies = append(bodies, fmt.Appendf(nil, `{"device":"d-%d","temp":21.5,"unit":"C","ts":1714564800000}`, j))
			}
			pub.Publish(b, topic, 1, bodies...)
		}
		return id, topic
	}
	sluice := func(b *testing.B, n int) time.Duration {
		id, topic := prepare(b, n)
		s := newSource(b, fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n", url, topic, id))
		ctx := context.Background()
		start := time.Now()
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < n; {
			bt, err := s.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += len(bt.Messages)
			bt.Ack(nil)
		}
		d := time.Since(start)
		_ = s.Close(ctx)
		return d
	}
	floor := func(b *testing.B, n int) time.Duration {
		id, topic := prepare(b, n)
		queue := make(chan paho.Message, 100000)
		o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).SetAutoAckDisabled(true).
			SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { queue <- m })
		c := paho.NewClient(o)
		start := time.Now()
		if tok := c.Connect(); !tok.WaitTimeout(testkit.DefaultWait) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		if tok := c.Subscribe(topic, 1, nil); !tok.WaitTimeout(testkit.DefaultWait) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		for range n {
			m := <-queue
			m.Ack()
		}
		d := time.Since(start)
		c.Disconnect(100)
		return d
	}
	floorbench.Compare(b, 6, sluice, floor)
}

// benchMessage is a paho.Message for BenchmarkEncode.
type benchMessage struct {
	paho.Message
	topic   string
	payload []byte
}

func (m *benchMessage) Topic() string     { return m.topic }
func (m *benchMessage) Payload() []byte   { return m.payload }
func (m *benchMessage) Qos() byte         { return 1 }
func (m *benchMessage) Retained() bool    { return false }
func (m *benchMessage) Duplicate() bool   { return false }
func (m *benchMessage) MessageID() uint16 { return 1 }

// BenchmarkEncode measures wrapping one message into its CloudEvent and
// Message, the way Read does it for a batch of 500: ns/op and allocs/op
// are per message, the CPU the source adds to the client's.
func BenchmarkEncode(b *testing.B) {
	s := newSource(b, "url = \"tcp://127.0.0.1:1883\"\ntopics = [\"devices/+/telemetry\"]\n")
	ms := make([]paho.Message, maxBatch)
	for i := range ms {
		ms[i] = &benchMessage{topic: "devices/d-7/telemetry", payload: fmt.Appendf(nil, `{"device":"d-%d","temp":21.5,"unit":"C","ts":1714564800000}`, i)}
	}
	ss := &session{idPrefix: []byte("sluice-t1-abc1-"), dead: make(chan struct{})}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(ms) {
		n := min(len(ms), b.N-done)
		if bt := s.batch(ss, ms[:n]); len(bt.Messages) != n {
			b.Fatal("short batch")
		}
	}
}
