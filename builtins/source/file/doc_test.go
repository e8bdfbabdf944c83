package file

import (
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
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
	checkTable(t, doc[start:end], New())
}

func checkTable(t *testing.T, section string, cfg any) {
	t.Helper()
	fields, err := component.FieldsOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, ln := range strings.Split(section, "\n") {
		if strings.HasPrefix(ln, "| `") {
			key := strings.TrimPrefix(ln, "| `")
			key = key[:strings.IndexByte(key, '`')]
			rows[key] = ln
		}
	}
	var walk func(prefix string, fs []component.Field)
	walk = func(prefix string, fs []component.Field) {
		for _, f := range fs {
			name := prefix + f.Name
			if len(f.Fields) > 0 {
				walk(name+".", f.Fields)
				continue
			}
			row, ok := rows[name]
			if !ok {
				t.Errorf("key %q has no row in the doc's table", name)
				continue
			}
			if f.Default != "" && !strings.Contains(row, "`"+f.Default+"`") {
				t.Errorf("key %q: the doc's row does not show the default `%s`: %s", name, f.Default, row)
			}
			delete(rows, name)
		}
	}
	walk("", fields)
	for k := range rows {
		t.Errorf("the doc's table documents %q, which is not a key", k)
	}
}
