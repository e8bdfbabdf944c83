package file

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/runtime/message"
)

// benchBatch is 100 CloudEvents of about 250 bytes, compact or indented.
func benchBatch(indented bool) ([]message.Message, int64) {
	var ms []message.Message
	var n int64
	for i := range 100 {
		p := fmt.Appendf(nil, `{"specversion":"1.0","id":"/var/log/app.log-0-%d","source":"file:///var/log/app.log","type":"sluice.file.line","time":"2026-11-25T15:00:00.000Z","datacontenttype":"application/json","data":{"user":%d,"msg":"order placed"}}`, i*250, i)
		if indented {
			p = fmt.Appendf(nil, `{ "specversion": "1.0", "id": "x-%d", "data": { "user": %d, "msg": "order placed", "items": [1, 2, 3] } }`, i, i)
		}
		ms = append(ms, message.Message{Payload: p})
		n += int64(len(p)) + 1
	}
	return ms, n
}

func benchWrite(b *testing.B, keys string, indented, parallel bool) {
	s := openSink(b, b.TempDir(), keys, nil)
	ms, n := benchBatch(indented)
	b.SetBytes(n)
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(2) // 4 writers on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Write(context.Background(), ms); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for range b.N {
			if err := s.Write(context.Background(), ms); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Batches of 100 events to one file.
func BenchmarkWriteNoFsync(b *testing.B) {
	benchWrite(b, "path = \"o.jsonl\"\nfsync = \"never\"\nmax_size = \"64MiB\"", false, false)
}
func BenchmarkWriteNoFsyncCompacting(b *testing.B) {
	benchWrite(b, "path = \"o.jsonl\"\nfsync = \"never\"\nmax_size = \"64MiB\"", true, false)
}
func BenchmarkWriteFsyncBatch(b *testing.B) {
	benchWrite(b, "path = \"o.jsonl\"\nfsync = \"batch\"\nmax_size = \"64MiB\"", false, false)
}
func BenchmarkWriteFsyncBatch4Writers(b *testing.B) {
	benchWrite(b, "path = \"o.jsonl\"\nfsync = \"batch\"\nmax_size = \"64MiB\"", false, true)
}
func BenchmarkWriteNoFsync4Writers(b *testing.B) {
	benchWrite(b, "path = \"o.jsonl\"\nfsync = \"never\"\nmax_size = \"64MiB\"", false, true)
}
