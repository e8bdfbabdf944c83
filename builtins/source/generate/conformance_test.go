package generate

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestConformance(t *testing.T) {
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			// 4 events a second, one per batch: a Read waits 250 ms, so
			// the suite sees it block.
			return componenttest.Build(t, Register, component.KindSource, "generate", "rate = 4\n",
				componenttest.Env(t, zerolog.WarnLevel, "source")).(component.Source)
		},
		Ordered: true,
		Count:   6,
	})
}
