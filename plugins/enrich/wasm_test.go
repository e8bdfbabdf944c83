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
