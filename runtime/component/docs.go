package component

import (
	"fmt"
	"strings"
)

// FieldTable renders fields as the Markdown table every generated reference
// uses: key (nested keys dotted), type with its enum or range, default and
// description.
func FieldTable(fs []Field) string {
	var b strings.Builder
	b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
	writeFieldRows(&b, fs, "")
	return b.String()
}

func writeFieldRows(b *strings.Builder, fs []Field, prefix string) {
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
		doc = strings.ReplaceAll(doc, "\n", " ")
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, f.Name, typ, def, doc)
		writeFieldRows(b, f.Fields, prefix+f.Name+".")
	}
}
