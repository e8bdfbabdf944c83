package redis

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference checks that the config table of docs/connectors/redis.md is the one
// the spec generates; -update rewrites it.
func TestDocsReference(t *testing.T) {
	doctest.Generated(t, "../../../docs/connectors/redis.md", "redis-source", doctest.SpecTable(t, Register, component.KindSource, "redis"))
}
