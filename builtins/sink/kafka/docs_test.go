package kafka

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

var update = flag.Bool("update", false, "rewrite the generated config table in docs/kafka.md")

const docsPath = "../../../docs/kafka.md"

// TestDocsReference checks that the config table of docs/kafka.md is the
// one the spec generates; -update rewrites it.
func TestDocsReference(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "kafka")
	fields, err := component.FieldsOf(spec.New())
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	table.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
	writeFieldRows(&table, fields, "")
	start, end := "<!-- sluice:generated:kafka-sink:start -->\n", "<!-- sluice:generated:kafka-sink:end -->"
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(start)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", docsPath, start, end)
	}
	got := string(doc[i+len(start) : j])
	if got == table.String() {
		return
	}
	if !*update {
		t.Fatalf("the config table in %s is stale: run go test ./builtins/sink/kafka -run TestDocsReference -update", docsPath)
	}
	out := append(append(append([]byte{}, doc[:i+len(start)]...), table.Bytes()...), doc[j:]...)
	if err := os.WriteFile(docsPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFieldRows renders fields as docs/reference.md does.
func writeFieldRows(b *bytes.Buffer, fs []component.Field, prefix string) {
	for _, f := range fs {
		typ := f.Type
		if f.Required {
			typ += " (required)"
		}
		if len(f.Enum) > 0 {
			typ += ": " + strings.Join(f.Enum, " \\| ")
		}
		if f.Min != "" || f.Max != "" {
			typ += fmt.Sprintf(" [%s..%s]", f.Min, f.Max)
		}
		def := f.Default
		if def != "" {
			def = "`" + def + "`"
		}
		doc := strings.ReplaceAll(f.Doc, "|", "\\|")
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, f.Name, typ, def, doc)
		writeFieldRows(b, f.Fields, prefix+f.Name+".")
	}
}
