package main

import (
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

const benchConfig = `{"fields":{"order":"data.order","amount":"data.amount","region":"data.region","name":"data.name"}}`

// TestWASM runs the built module in the real host.
func TestWASM(t *testing.T) {
	tr := plugintest.Load(t, "pick.wasm", plugintest.Build(t, "pick"), benchConfig, wasmhost.TransformerConfig{})
	r := plugintest.Run(t, tr, plugintest.BenchBatch(2))
	if len(r.Payloads) != 2 || r.Payloads[1] != `{"amount":123.45,"name":"ada lovelace","order":1,"region":"eu-west-1"}` {
		t.Errorf("outputs %q", r.Payloads)
	}
}

// BenchmarkWASM reshapes each ~250-byte event into four fields, as the
// bench task's template does.
func BenchmarkWASM(b *testing.B) {
	tr := plugintest.Load(b, "pick.wasm", plugintest.Build(b, "pick"), benchConfig, wasmhost.TransformerConfig{})
	in := plugintest.BenchBatch(256)
	plugintest.Bench(b, tr, in, len(in))
}
