package rabbitmq

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	rabbitmqsink "github.com/sluicehq/sluice/builtins/sink/rabbitmq"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference keeps the config tables of docs/connectors/rabbitmq.md
// in step with the specs; -update rewrites them.
func TestDocsReference(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "connectors", "rabbitmq.md")
	doctest.Generated(t, path, "source", doctest.SpecTable(t, Register, component.KindSource, "rabbitmq"))
	doctest.Generated(t, path, "sink", doctest.SpecTable(t, rabbitmqsink.Register, component.KindSink, "rabbitmq"))
}
