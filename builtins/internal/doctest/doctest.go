// Package doctest keeps connector docs in step with the component specs, for
// tests: generated sections are compared with what the specs render (and
// rewritten with -update), hand-written key tables are checked against the
// config structs. Only test binaries import it.
package doctest

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

var update = flag.Bool("update", false, "rewrite the generated sections of the docs")

// SpecTable renders the config table of the component kind/name that
// register adds to a registry.
func SpecTable(t testing.TB, register func(*component.Registry), kind component.Kind, name string) string {
	t.Helper()
	r := component.NewRegistry()
	register(r)
	spec, ok := r.Lookup(kind, name)
	if !ok {
		t.Fatalf("no %s %q registered", kind, name)
	}
	fields, err := component.FieldsOf(spec.New())
	if err != nil {
		t.Fatal(err)
	}
	return component.FieldTable(fields)
}

// Generated checks that the section of path between the markers
// <!-- sluice:generated:NAME:start --> and <!-- sluice:generated:NAME:end -->
// holds want; with -update it rewrites the section.
func Generated(t testing.TB, path, name, want string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start, end := "<!-- sluice:generated:"+name+":start -->\n", "<!-- sluice:generated:"+name+":end -->"
	i, j := bytes.Index(doc, []byte(start)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", path, start, end)
	}
	if string(doc[i+len(start):j]) == want {
		return
	}
	if !*update {
		t.Fatalf("the generated section %q of %s is stale: rerun this test with -update", name, path)
	}
	out := append(append(append([]byte(nil), doc[:i+len(start)]...), want...), doc[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CoversEveryKey checks a hand-written Markdown table (rows starting with
// "| `key`") in section against the config struct cfg points to: every key
// has a row that shows its default, and no row names a key that is not one.
func CoversEveryKey(t testing.TB, section string, cfg any) {
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
