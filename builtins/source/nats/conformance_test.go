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
		New: func(t testing.TB) component.Source { return fx.build(t, fx.srv.URL, "") },
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
