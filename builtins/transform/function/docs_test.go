package function

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference keeps the config table of docs/connectors/function.md
// in step with the spec; -update rewrites it.
func TestDocsReference(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "connectors", "function.md")
	doctest.Generated(t, path, "transform", doctest.SpecTable(t, Register, component.KindTransform, "function"))
}
