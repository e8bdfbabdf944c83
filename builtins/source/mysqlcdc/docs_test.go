package mysqlcdc

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestDocsReference checks that the key table of docs/connectors/mysql.md
// is the one the spec generates; -update rewrites it.
func TestDocsReference(t *testing.T) {
	doctest.Generated(t, "../../../docs/connectors/mysql.md", "mysql-cdc-source", doctest.SpecTable(t, Register, component.KindSource, "mysql_cdc"))
}
