package kafka

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
)

// benchRecords are poll-sized batches of typical records: a ~110-byte JSON
// value, a key and two headers.
func benchRecords(n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic: "orders", Partition: 3, Offset: int64(1_000_000 + i), Timestamp: time.UnixMilli(sampleTS + int64(i)),
			Key:     []byte("user-" + strconv.Itoa(i%1000)),
			Value:   []byte(`{"order_id":"o-` + strconv.Itoa(i) + `","region":"eu-west","amount":129.5,"items":3,"email":"someone@example.com"}`),
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}, {Key: "source", Value: []byte("web")}},
		}
	}
	return recs
}

// BenchmarkEncode measures wrapping one record into its CloudEvent and
// Message, the way Read does it for a 500-record poll: ns/op and allocs/op
// are per record.
func BenchmarkEncode(b *testing.B) {
	for _, format := range []string{FormatJSON, FormatText, FormatBase64} {
		b.Run(format, func(b *testing.B) {
			env := testEnv(b)
			c, err := build(decode(b, map[string]any{"brokers": []any{"127.0.0.1:9092"}, "topics": []any{"orders"}, "value_format": format}), env)
			if err != nil {
				b.Fatal(err)
			}
			s := c.(*Source)
			st := &partState{tp: tp{"orders", 3}, lane: "orders/3"}
			recs := benchRecords(500)
			var bytes int
			for _, r := range recs {
				bytes += len(r.Value)
			}
			b.SetBytes(int64(bytes / len(recs)))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += len(recs) {
				n := min(len(recs), b.N-done)
				batch := s.encode(st, recs[:n])
				if len(batch.Messages) != n {
					b.Fatal("short batch")
				}
			}
		})
	}
}

// BenchmarkAppendEvent is the event bytes alone, into a reused buffer.
func BenchmarkAppendEvent(b *testing.B) {
	e := newEncoder("127.0.0.1:9092", FormatJSON, FormatText)
	r := benchRecords(1)[0]
	m := e.meta(r.Topic)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(r.Value)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = e.appendEvent(buf[:0], m, r)
	}
}

// BenchmarkReadSynthetic is the whole source against a kfake cluster that
// serves every fetch from one canned batch of 100-byte values: poll, cut
// into batches, encode, ack. It reports records/s.
func BenchmarkReadSynthetic(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 4, Topics: []string{"syn"},
		Extra: []kfake.Opt{kfake.SyntheticFetch(kfake.SyntheticBatch{Records: 500, RecordBytes: 100})}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tree := baseTree(c, "syn", uniq(b, "g"))
	tree["value_format"] = "text"
	s := newSource(b, testEnv(b), tree)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer rcancel()
	for got := 0; got < b.N; {
		bt, err := s.Read(rctx)
		if err != nil {
			b.Fatal(err)
		}
		got += len(bt.Messages)
		bt.Ack(nil)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	b.StopTimer()
	_ = s.Close(context.Background()) // before the cluster goes
}

// BenchmarkAppendHeaders is the headers object of one record, for records
// of n headers with distinct names (the common case is a handful), and of
// n headers where every name appears twice.
func BenchmarkAppendHeaders(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64, 256, 1024} {
		for _, dup := range []bool{false, true} {
			name := "n=" + strconv.Itoa(n)
			if dup {
				name += "/repeated"
			}
			b.Run(name, func(b *testing.B) {
				hs := make([]kgo.RecordHeader, n)
				for i := range hs {
					k := i
					if dup {
						k = i / 2
					}
					hs[i] = kgo.RecordHeader{Key: "x-header-" + strconv.Itoa(k), Value: []byte("4bf92f3577b34da6")}
				}
				buf := make([]byte, 0, 64*n)
				b.ReportAllocs()
				for b.Loop() {
					buf = appendHeaders(buf[:0], hs)
				}
			})
		}
	}
}
