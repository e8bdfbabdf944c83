package engine_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// oneShot is an endless source that cannot send again what it read, as
// stdin cannot.
type oneShot struct{ endless }

func (*oneShot) OneShot() {}

// downSink fails every write (retryable) until up is set.
type downSink struct {
	memSink
	up    atomic.Bool
	fails atomic.Int64
}

func (s *downSink) Write(ctx context.Context, msgs []message.Message) error {
	if !s.up.Load() {
		s.fails.Add(1)
		return component.Retryable(errors.New("503"), 0)
	}
	return s.memSink.Write(ctx, msgs)
}

// TestStopWithAFailingSinkByKindOfSource: a stop while the sink fails cuts
// the retries short and gives the batches back to a source that sends them
// again; a source that cannot (stdin) keeps its batches retried within the
// shutdown deadline, so a sink back within it still takes them. Cut at
// once, they were lost.
func TestStopWithAFailingSinkByKindOfSource(t *testing.T) {
	retry := func(c *config.Task) {
		c.Retry = config.Retry{Policy: "custom", Attempts: 1000, Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	run := func(t *testing.T, src component.Source) *downSink {
		sink := &downSink{}
		o := opts(t)
		o.ShutdownTimeout = time.Minute
		r := engine.New(task(src, sink, retry), o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for sink.fails.Load() < 3 { // retrying
			time.Sleep(10 * time.Millisecond) // the bubble's clock: moves when all wait
		}
		cancel()
		synctest.Wait()
		sink.up.Store(true) // back within the shutdown deadline
		if err := <-done; err != nil {
			t.Fatalf("stop: %v", err)
		}
		return sink
	}
	t.Run("sends again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			src := &endless{}
			run(t, src)
			if src.nacked.Load() == 0 {
				t.Fatalf("acked %d, nacked %d: want the failing batches given back at the stop", src.acked.Load(), src.nacked.Load())
			}
		})
	})
	t.Run("one shot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			src := &oneShot{}
			sink := run(t, src)
			if src.nacked.Load() != 0 || src.acked.Load() == 0 || len(sink.payloads()) == 0 {
				t.Fatalf("acked %d, nacked %d, delivered %d: a one-shot source's batches must be waited for within the deadline", src.acked.Load(), src.nacked.Load(), len(sink.payloads()))
			}
		})
	})
}
