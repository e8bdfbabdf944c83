package redis

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func TestConformance(t *testing.T) {
	fx := newFixture(t)
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source { return fx.build(t, fx.srv.URL, "c1", "") },
		Produce: func(t testing.TB, bodies [][]byte) {
			fx.srv.Add(t, fx.stream, "payload", bodies)
		},
		Body: func(t testing.TB, m message.Message) []byte {
			return decode(t, m).Data.Fields["payload"]
		},
		Redelivers: true,
		Ordered:    true,
	})
}
