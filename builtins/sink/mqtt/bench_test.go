package mqtt

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/builtins/internal/floorbench"
	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

const benchBatch = 256

// BenchmarkPublish writes QoS 1 messages in 256-message batches, each
// Write waiting for its PUBACKs: through this sink (defaults: at most 20
// unacknowledged) against the floor, a bare paho client publishing the
// batch and waiting for its tokens, in alternating rounds, on a throwaway
// Mosquitto with its defaults. Run with -benchtime Nx (N events in all).
func BenchmarkPublish(b *testing.B) {
	url := mqtttest.Mosquitto(b, "allow_anonymous true")
	msgs := make([]message.Message, benchBatch)
	for i := range msgs {
		p := fmt.Appendf(nil, `{"device":"d-%d","temp":21.5,"unit":"C","ts":1714564800000}`, i)
		msgs[i] = message.Message{Payload: p, Event: p}
	}
	sluice := func(b *testing.B, n int) time.Duration {
		s := newSink(b, fmt.Sprintf("url = %q\ntopic = \"bench/out\"\nqos = 1\n", url))
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
		return time.Since(start)
	}
	floor := func(b *testing.B, n int) time.Duration {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(testkit.Unique(b, "floor")))
		if tok := c.Connect(); !tok.WaitTimeout(testkit.DefaultWait) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		defer c.Disconnect(100)
		toks := make([]paho.Token, benchBatch)
		start := time.Now()
		for done := 0; done < n; done += benchBatch {
			k := min(benchBatch, n-done)
			for i := range k {
				toks[i] = c.Publish("bench/out", 1, false, msgs[i].Payload)
			}
			for i := range k {
				if toks[i].Wait(); toks[i].Error() != nil {
					b.Fatal(toks[i].Error())
				}
			}
		}
		return time.Since(start)
	}
	floorbench.Compare(b, 6, sluice, floor)
}
