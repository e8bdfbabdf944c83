package nats

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference checks that the config table of docs/connectors/nats.md is the one
// the spec generates; -update rewrites it.
func TestDocsReference(t *testing.T) {
	doctest.Generated(t, "../../../docs/connectors/nats.md", "nats-sink", doctest.SpecTable(t, Register, component.KindSink, "nats"))
}
