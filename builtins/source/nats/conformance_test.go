package nats

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func TestConformance(t *testing.T) {
	fx := newFixture(t)
	componenttest.Source(t, componenttest.SourceSuite{
		// Messages on their way to a source when it closes (a nacked batch
		// the server is sending again) are lost with its connection and come
		// again after ack_wait: a short one keeps the test short.
		New: func(t testing.TB) component.Source { return fx.build(t, fx.srv.URL, "ack_wait = \"3s\"\n") },
		Produce: func(t testing.TB, bodies [][]byte) {
			fx.publish(t, "conformance", bodies)
		},
		Body: func(t testing.TB, m message.Message) []byte {
			return decode(t, m).Data.Value
		},
		Redelivers: true,
		// JetStream delivers a durable's messages in stream order, but a
		// message handed back (nacked, or left by a crashed process) comes
		// again later, after newer ones: order holds only while nothing is
		// redelivered. TestOrderWithoutRedelivery checks that part.
		Ordered: false,
	})
}
