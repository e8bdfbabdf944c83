package instrument_test

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// BenchmarkSpin measures the runaway protection on a loop-heavy guest: a
// tight byte-hashing loop, plain and instrumented (target: <= 25% slower).
func BenchmarkSpin(b *testing.B) {
	plain := wasmtest.Spin()
	res, err := instrument.Instrument(plain, instrument.Options{})
	if err != nil {
		b.Fatal(err)
	}
	alt, err := instrument.Instrument(plain, instrument.WithGlobalLoops(instrument.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wasm []byte
	}{{"plain", plain}, {"instrumented", res.Module}, {"global-counter", alt.Module}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			if _, err := rt.NewHostModuleBuilder(instrument.CheckModule).NewFunctionBuilder().
				WithFunc(func() {}).Export(instrument.CheckName).Instantiate(ctx); err != nil {
				b.Fatal(err)
			}
			m, err := rt.Instantiate(ctx, tc.wasm)
			if err != nil {
				b.Fatal(err)
			}
			spin := m.ExportedFunction("spin")
			const iters = 1 << 20
			b.ResetTimer()
			for b.Loop() {
				if _, err := spin.Call(ctx, iters); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*iters), "ns/iteration")
		})
	}
}
