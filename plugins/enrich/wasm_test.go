package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// TestWASM runs the built module in the real host.
func TestWASM(t *testing.T) {
	tr := plugintest.Load(t, "enrich.wasm", plugintest.Build(t, "enrich"),
		`{"key":"data.region","on_missing":"fail",`+regions+`}`, wasmhost.TransformerConfig{})
	r := plugintest.Run(t, tr, plugintest.Events(
		`{"data":{"region":"eu-west-1"}}`,
		`{"data":{"region":"mars"}}`,
		`{"data":{"region":"eu-central-1","site":"old"}}`,
	))
	want := []string{
		`{"data":{"region":"eu-west-1","site":"Dublin","zone":1}}`,
		`{"data":{"region":"eu-central-1","site":"Frankfurt","tags":["a","b"]}}`,
	}
	if strings.Join(r.Payloads, "\n") != strings.Join(want, "\n") {
		t.Errorf("outputs:\n%s\nwant:\n%s", strings.Join(r.Payloads, "\n"), strings.Join(want, "\n"))
	}
	if len(r.Failures) != 1 || r.Failures[0].Ref != 1 || !strings.Contains(r.Failures[0].Err.Error(), "key data.region is not in the table") {
		t.Errorf("failures %v", r.Failures)
	}
}

// BenchmarkWASM adds two fields by region to each ~250-byte event.
func BenchmarkWASM(b *testing.B) {
	tr := plugintest.Load(b, "enrich.wasm", plugintest.Build(b, "enrich"), `{"key":"data.region",`+regions+`}`, wasmhost.TransformerConfig{})
	in := plugintest.BenchBatch(256)
	plugintest.Bench(b, tr, in, len(in))
}

// TestWASMKeepExistingSkipsAField keeps a field the event already has
// between two it adds (overwrite = false): the added fields are written
// around it, and every output is the valid document, event after event.
func TestWASMKeepExistingSkipsAField(t *testing.T) {
	tr := plugintest.Load(t, "enrich.wasm", plugintest.Build(t, "enrich"),
		`{"key":"data.k","overwrite":false,"table":{"x":{"a":1,"b":2,"c":3,"d":4,"e":5}}}`, wasmhost.TransformerConfig{})
	var docs, want []string
	for range 4 {
		docs = append(docs, `{"data":{"k":"x","b":0}}`, `{"data":{"k":"x","b":0,"d":0}}`)
		want = append(want, `{"data":{"k":"x","b":0,"a":1,"c":3,"d":4,"e":5}}`, `{"data":{"k":"x","b":0,"d":0,"a":1,"c":3,"e":5}}`)
	}
	r := plugintest.Run(t, tr, plugintest.Events(docs...))
	if len(r.Failures) > 0 {
		t.Fatalf("failures %v", r.Failures)
	}
	if strings.Join(r.Payloads, "\n") != strings.Join(want, "\n") {
		t.Errorf("outputs:\n%s\nwant:\n%s", strings.Join(r.Payloads, "\n"), strings.Join(want, "\n"))
	}
}

// TestWASMEntryWithoutFields passes on unchanged an event whose key maps
// to an empty table (a known key with nothing to add, as in an allow-list
// with on_missing = "drop") or that takes an empty default: nothing is
// spliced into it, so it stays valid JSON.
func TestWASMEntryWithoutFields(t *testing.T) {
	tr := plugintest.Load(t, "enrich.wasm", plugintest.Build(t, "enrich"),
		`{"key":"data.k","table":{"a":{}},"default":{}}`, wasmhost.TransformerConfig{})
	docs := []string{`{"data":{"k":"a","n":1}}`, `{"data":{"k":"b","n":2}}`}
	r := plugintest.Run(t, tr, plugintest.Events(docs...))
	if len(r.Failures) > 0 {
		t.Fatalf("failures %v", r.Failures)
	}
	if strings.Join(r.Payloads, "\n") != strings.Join(docs, "\n") {
		t.Errorf("outputs:\n%s\nwant:\n%s", strings.Join(r.Payloads, "\n"), strings.Join(docs, "\n"))
	}
}
