package file

import (
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/doctest"
)

// TestDocCoversEveryKey keeps docs/connectors/file.md in step with the
// config struct: every key has a row in the source's table, showing its
// default.
func TestDocCoversEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../../docs/connectors/file.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start, end := strings.Index(doc, "## Source"), strings.Index(doc, "## Sink")
	if start < 0 || end < start {
		t.Fatal("docs/connectors/file.md lacks its Source and Sink sections")
	}
	doctest.CoversEveryKey(t, doc[start:end], New())
}
