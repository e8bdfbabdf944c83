package abi

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func benchMsgs(n int) []message.Message {
	in := make([]message.Message, n)
	for i := range in {
		p := []byte(`{"a":1}`)
		in[i] = message.Message{Payload: p, Event: p, Pos: message.Position{Stream: "orders", Offset: int64(i)}, Time: time.Unix(1700000000, 0)}
	}
	return in
}

func BenchmarkEncode(b *testing.B) {
	in := benchMsgs(256)
	buf := make([]byte, EncodedSize(in))
	for b.Loop() {
		Encode(buf, in)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/record")
}

func BenchmarkDecodePass(b *testing.B) {
	in := benchMsgs(256)
	mem := make([]byte, 16+16*256)
	binary.LittleEndian.PutUint32(mem[0:], 1)
	binary.LittleEndian.PutUint32(mem[4:], 256)
	out := &component.Output{}
	for b.Loop() {
		out.Messages, out.Buf = out.Messages[:0], out.Buf[:0]
		if err := Decode(mem, uint64(len(mem)), in, out, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/record")
}
