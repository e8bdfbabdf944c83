package buffer

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/message"
)

// benchBatch is 100 records of 300 payload bytes whose event is a
// different 300 bytes (a task with a transform: both are stored).
func benchBatch() []message.Message {
	msgs := make([]message.Message, 100)
	for i := range msgs {
		msgs[i] = message.Message{
			Payload: bytes.Repeat([]byte{'p'}, 300),
			Event:   bytes.Repeat([]byte{'e'}, 300),
			Key:     []byte("key-" + strconv.Itoa(i)),
			Pos:     message.Position{Stream: "orders", Partition: 1, Offset: int64(i)},
		}
	}
	return msgs
}

func encodedSize(msgs []message.Message) int {
	var b []byte
	for i := range msgs {
		b = appendFrame(b, &msgs[i], Tag{Last: true}, i == len(msgs)-1)
	}
	return len(b)
}

func openBench(b *testing.B, o Options) *Buffer {
	o.Dir = b.TempDir()
	o.MaxSize = 8 << 30 // never full: the drain is not what is measured
	o.Logger = zerolog.Nop()
	buf, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { buf.Close() })
	return buf
}

// BenchmarkAppend measures Append of 100 × 300-byte records (plus a
// 300-byte event each) from one goroutine and from GOMAXPROCS×4
// goroutines (where appends waiting together share one fsync).
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync"
		if !sync {
			name = "nosync"
		}
		b.Run(name+"/serial", func(b *testing.B) {
			buf := openBench(b, Options{NoSync: !sync})
			msgs := benchBatch()
			b.SetBytes(int64(encodedSize(msgs)))
			b.ReportAllocs()
			for b.Loop() {
				if err := buf.Append(context.Background(), msgs, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "records/s")
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			buf := openBench(b, Options{NoSync: !sync})
			msgs := benchBatch()
			b.SetBytes(int64(encodedSize(msgs)))
			b.SetParallelism(4)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := buf.Append(context.Background(), msgs, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReadCommit measures the drain: Read of 100 records and Commit
// of their cursor, from a backlog written beforehand (off the clock).
func BenchmarkReadCommit(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync"
		if !sync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			buf := openBench(b, Options{NoSync: !sync})
			msgs := benchBatch()
			b.SetBytes(int64(encodedSize(msgs)))
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if buf.Stats().Unread == 0 {
					b.StopTimer()
					for range 200 {
						if err := buf.Append(ctx, msgs, nil); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				batch, err := buf.Read(ctx, 100)
				if err != nil {
					b.Fatal(err)
				}
				if err := buf.Commit(batch.Cursor); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
