package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// TestWASM runs the built module in the real host: outputs inherit their
// input's position, and a bad record fails alone.
func TestWASM(t *testing.T) {
	tr := plugintest.Load(t, "split.wasm", plugintest.Build(t, "split"),
		`{"field":"data.items","as":"data.item","index_field":"data.index","on_missing":"fail"}`, wasmhost.TransformerConfig{})
	r := plugintest.Run(t, tr, plugintest.Events(
		`{"data":{"order":1,"items":["a","b","c"]}}`,
		`{"data":{"order":2}}`,
		`{"data":{"order":3,"items":[{"sku":"x"}]}}`,
	))
	want := []string{
		`{"data":{"order":1,"item":"a","index":0}}`,
		`{"data":{"order":1,"item":"b","index":1}}`,
		`{"data":{"order":1,"item":"c","index":2}}`,
		`{"data":{"order":3,"item":{"sku":"x"},"index":0}}`,
	}
	if strings.Join(r.Payloads, "\n") != strings.Join(want, "\n") {
		t.Errorf("outputs:\n%s\nwant:\n%s", strings.Join(r.Payloads, "\n"), strings.Join(want, "\n"))
	}
	if r.Refs[0] != 0 || r.Refs[2] != 0 || r.Refs[3] != 2 {
		t.Errorf("refs %v", r.Refs)
	}
	if len(r.Failures) != 1 || r.Failures[0].Ref != 1 || !strings.Contains(r.Failures[0].Err.Error(), "data.items is absent or not an array") {
		t.Errorf("failures %v", r.Failures)
	}
}
