package http

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	httpsink "github.com/sluicehq/sluice/builtins/sink/http"
	"github.com/sluicehq/sluice/runtime/component"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/connectors/http.md")

// TestDocsReference keeps the config tables of docs/connectors/http.md in
// step with the specs: they are generated from the config structs' tags, and
// a drift fails here.
func TestDocsReference(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "connectors", "http.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	r := component.NewRegistry()
	Register(r)
	httpsink.Register(r)
	out := doc
	for _, sec := range []struct {
		name string
		kind component.Kind
	}{{"source", component.KindSource}, {"sink", component.KindSink}} {
		spec, _ := r.Lookup(sec.kind, "http")
		fields, err := component.FieldsOf(spec.New())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
		renderFields(&b, "", fields)
		start := "<!-- sluice:generated:" + sec.name + ":start -->\n"
		end := "<!-- sluice:generated:" + sec.name + ":end -->"
		i, j := bytes.Index(out, []byte(start)), bytes.Index(out, []byte(end))
		if i < 0 || j < i {
			t.Fatalf("%s lacks the markers %q ... %q", path, start, end)
		}
		out = append(append(append([]byte(nil), out[:i+len(start)]...), b.String()...), out[j:]...)
	}
	if bytes.Equal(out, doc) {
		return
	}
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("stale docs: %s does not match the specs; run `go test ./builtins/source/http -run TestDocsReference -update`", path)
}

func renderFields(b *strings.Builder, prefix string, fields []component.Field) {
	for _, f := range fields {
		key := prefix + f.Name
		def := f.Default
		switch {
		case f.Required:
			def = "required"
		case def == "" || def == `""`:
			def = "–"
		default:
			def = "`" + strings.Trim(def, `"`) + "`"
		}
		desc := f.Doc
		if len(f.Enum) > 0 {
			desc += " One of `" + strings.Join(f.Enum, "`, `") + "`."
		}
		if f.Min != "" || f.Max != "" {
			desc += " Range " + f.Min + ".." + f.Max + "."
		}
		desc = strings.ReplaceAll(desc, "|", `\|`)
		b.WriteString("| `" + key + "` | " + f.Type + " | " + def + " | " + desc + " |\n")
		if len(f.Fields) > 0 {
			renderFields(b, key+".", f.Fields)
		}
	}
}
