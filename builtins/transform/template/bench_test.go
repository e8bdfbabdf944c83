package template

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// benchEvent is a 244-byte CloudEvent as a Kafka source emits it.
var benchEvent = []byte(`{"specversion":"1.0","id":"orders-3-1842","source":"kafka://orders","type":"sluice.kafka.record","time":"2026-11-25T15:00:00.000Z","data":{"topic":"orders","partition":3,"offset":1842,"key":"user-42","value":{"order_id":"o-77","amount":129.5}}}`)

// BenchmarkApply measures the template transform per event, over batches
// of 64 events, with two and three variables.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"json3", tomlTemplate(`{"user": "${jsonEscape(k)}", "order": "${o}", "amount": ${a}}`,
			`{ k = "$.data.key", o = "$.data.value.order_id", a = "$.data.value.amount" }`)},
		{"text2", tomlTemplate(`user ${k} order ${o}`, `{ k = "$.data.key", o = "$.data.value.order_id" }`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := mustBuild(b, bc.src, component.Env{})
			in := make([]message.Message, 64)
			for i := range in {
				in[i].Payload = benchEvent
			}
			out := component.Output{Messages: make([]message.Message, 0, len(in)), Buf: make([]byte, 0, 64*256)}
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				_ = tr.Apply(context.Background(), in, &out)
			}
			perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N*len(in))
			b.ReportMetric(perEvent, "ns/event")
			b.ReportMetric(1e9/perEvent, "events/s")
		})
	}
}
