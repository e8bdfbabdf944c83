package template

import "testing"

// benchEvent is a 250-byte CloudEvent as a Kafka source emits it.
var benchEvent = []byte(`{"specversion":"1.0","id":"orders-3-1842","source":"kafka://orders","type":"sluice.kafka.record","time":"2026-11-25T15:00:00.000Z","data":{"topic":"orders","partition":3,"offset":1842,"key":"user-42","value":{"order_id":"o-77","amount":129.5}}}`)

func BenchmarkRender(b *testing.B) {
	for _, bc := range []struct {
		name string
		text string
		vars map[string]string
	}{
		{"text3", `user ${k} order ${o} amount ${a}`, map[string]string{"k": "$.data.key", "o": "$.data.value.order_id", "a": "$.data.value.amount"}},
		{"json3", `{"user": "${jsonEscape(k)}", "order": "${o}", "amount": ${a}}`, map[string]string{"k": "$.data.key", "o": "$.data.value.order_id", "a": "$.data.value.amount"}},
		{"object2", `{"who": "${k}", "v": ${v}}`, map[string]string{"k": "$.data.key", "v": "$.data.value"}},
		{"fixed", `orders-eu`, map[string]string{"x": "y"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tpl := mustCompile(b, bc.text, bc.vars)
			buf := make([]byte, 0, 1024)
			b.SetBytes(int64(len(benchEvent)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = tpl.Render(buf[:0], benchEvent)
			}
		})
	}
}
