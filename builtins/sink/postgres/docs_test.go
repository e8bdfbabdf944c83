package postgres

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocKeys keeps the key table of docs/connectors/postgres.md in step with the
// spec (go test -run TestDocKeys -update rewrites it).
func TestDocKeys(t *testing.T) {
	doctest.Generated(t, "../../../docs/connectors/postgres.md", "postgres", doctest.SpecTable(t, Register, component.KindSink, Name))
}
