package sdk

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/sdk/jsonfield"
)

func encodeForBench(payloads [][]byte) []byte {
	le := binary.LittleEndian
	size := 16 + 64*len(payloads)
	for _, p := range payloads {
		size += len(p)
	}
	b := make([]byte, size)
	le.PutUint32(b[0:], 1)
	le.PutUint32(b[4:], uint32(len(payloads)))
	pos := 16 + 64*len(payloads)
	for i, p := range payloads {
		d := b[16+64*i:]
		le.PutUint32(d[0:], uint32(pos))
		le.PutUint32(d[4:], uint32(len(p)))
		le.PutUint32(d[56:], uint32(pos))
		le.PutUint32(d[60:], uint32(len(p)))
		le.PutUint32(d[36:], flagPayloadEvent)
		pos += copy(b[pos:], p)
	}
	return b
}

// BenchmarkProcessUpper runs the benchmark guest's handler natively, as a
// yardstick for the WASM numbers.
func BenchmarkProcessUpper(b *testing.B) {
	var payloads [][]byte
	for i := range 256 {
		payloads = append(payloads, fmt.Appendf(nil, `{"specversion":"1.0","id":"orders-0-%06d","source":"bench","type":"order.created","time":"2026-01-02T03:04:05Z","data":{"order":%d,"name":"ada lovelace","region":"eu-west-1","amount":123.45,"items":[1,2,3]}}`, i, i))
	}
	batch := encodeForBench(payloads)
	plugin = &Plugin{Handler: MapFunc(func(r *Record, dst []byte) ([]byte, error) {
		v, ok := jsonfield.GetString(r.Payload(), "data", "name")
		if !ok {
			return r.Payload(), nil
		}
		q := append(dst, '"')
		for _, c := range v {
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			q = append(q, c)
		}
		q = append(q, '"')
		return jsonfield.Set(q[len(q):], r.Payload(), q, "data", "name_upper")
	})}
	defer func() { plugin = nil }()
	b.ReportAllocs()
	for b.Loop() {
		state.process(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
	if len(state.outs) != 256 {
		b.Fatal(len(state.outs))
	}
}
