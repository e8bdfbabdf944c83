package nats

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestPauseResumeKeepsOrder pauses and resumes the source while messages
// flow: Pause drained the pull subscription without waiting for the drain,
// so a Resume soon after (an admin pause and resume from a script, over a
// link with some latency) pulled on a second subscription while the first
// still delivered, and messages reached the batches in another order than
// the server delivered them (about one cycle in ten here). The order
// checked is the consumer sequence, the server's delivery order: a message
// it sent to the drained pull request as that went away comes again later
// under a new consumer sequence, after newer ones, as the docs say of
// messages delivered again.
func TestPauseResumeKeepsOrder(t *testing.T) {
	fx := newFixture(t)
	s := open(t, fx.build(t, fx.srv.URL, "max_batch = 10\n"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { // publisher
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = fx.srv.JS.Publish(ctx, fx.subject+".x", strconv.AppendInt(nil, int64(i), 10))
		}
	}()
	var read, disorders atomic.Int64
	var first atomic.Value
	go func() { // the engine: reads, checks the order, acknowledges
		defer wg.Done()
		var last uint64
		for ctx.Err() == nil {
			b, err := s.Read(ctx)
			if err != nil {
				continue
			}
			for _, seq := range consumerSeqs(s, b) {
				if seq <= last {
					disorders.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("consumer sequence %d read after %d", seq, last))
				}
				last = seq
			}
			read.Add(int64(len(b.Messages)))
			b.Ack(nil)
		}
	}()
	for range 300 {
		s.Pause()
		s.Resume()
		at := read.Load()
		testkit.WaitFor(t, "messages read after the resume", func() bool { return read.Load() > at })
	}
	cancel()
	wg.Wait()
	if d := disorders.Load(); d > 0 {
		t.Fatalf("%d messages read out of the server's delivery order (the first: %v)", d, first.Load())
	}
}

// consumerSeqs returns the consumer sequence of each message of b (its
// place in the server's delivery order), from the batch's messages the
// source keeps until b is acknowledged.
func consumerSeqs(s *Source, b component.Batch) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.inflight {
		// f.out holds the batch's events from its first element (a reused
		// batch keeps it at length 0).
		if cap(f.out) > 0 && len(b.Messages) > 0 && &f.out[:1][0] == &b.Messages[0] {
			n := make([]uint64, len(f.msgs))
			for i, m := range f.msgs {
				if md, err := m.Metadata(); err == nil {
					n[i] = md.Sequence.Consumer
				}
			}
			return n
		}
	}
	panic("the batch is not in flight")
}
