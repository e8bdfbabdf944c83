package http

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	httpsink "github.com/sluicehq/sluice/builtins/sink/http"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference keeps the config tables of docs/connectors/http.md in
// step with the specs; -update rewrites them.
func TestDocsReference(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "connectors", "http.md")
	doctest.Generated(t, path, "source", doctest.SpecTable(t, Register, component.KindSource, "http"))
	doctest.Generated(t, path, "sink", doctest.SpecTable(t, httpsink.Register, component.KindSink, "http"))
}
