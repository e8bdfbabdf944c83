package engine_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// countSource hands out the same batch of 256 events until n were read.
type countSource struct {
	batch []message.Message
	n     atomic.Int64
}

func (s *countSource) Open(context.Context) error  { return nil }
func (s *countSource) Close(context.Context) error { return nil }
func (s *countSource) Read(ctx context.Context) (component.Batch, error) {
	if s.n.Add(-int64(len(s.batch))) < -int64(len(s.batch)) {
		return component.Batch{}, io.EOF
	}
	msgs := make([]message.Message, len(s.batch))
	copy(msgs, s.batch)
	return component.Batch{Messages: msgs, Lane: "l"}, nil
}

type discard struct{}

func (discard) Open(context.Context) error                     { return nil }
func (discard) Close(context.Context) error                    { return nil }
func (discard) Write(context.Context, []message.Message) error { return nil }

// BenchmarkTaskTaps measures a whole task (source → sink, 256 events a
// batch) without a tap, and with a tap on the sink whose reader never
// reads: the cost of observing when nobody watches, and the bound when
// somebody does (docs/performance.md).
func BenchmarkTaskTaps(b *testing.B) {
	ev := []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","data":{"n":1,"region":"eu-west","amount":12.5}}`)
	batch := make([]message.Message, 256)
	for i := range batch {
		batch[i] = message.Message{Payload: ev, Event: ev}
	}
	for _, tapped := range []bool{false, true} {
		b.Run(fmt.Sprintf("tap=%v", tapped), func(b *testing.B) {
			src := &countSource{batch: batch}
			src.n.Store(int64(b.N))
			tk := engine.New(task(src, discard{}, nil), engine.Options{Logger: zerolog.Nop()})
			if tapped {
				_, stop, err := tk.Tap("sink")
				if err != nil {
					b.Fatal(err)
				}
				defer stop()
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := tk.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(tk.Stats().In)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
