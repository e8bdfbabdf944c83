package mqtt

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	mqttsink "github.com/sluicehq/sluice/builtins/sink/mqtt"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference keeps the config tables of docs/connectors/mqtt.md in
// step with the specs; -update rewrites them.
func TestDocsReference(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "connectors", "mqtt.md")
	doctest.Generated(t, path, "source", doctest.SpecTable(t, Register, component.KindSource, "mqtt"))
	doctest.Generated(t, path, "sink", doctest.SpecTable(t, mqttsink.Register, component.KindSink, "mqtt"))
}
