package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// rewindSource serves fixed batches of one lane and, like a Kafka source,
// rewinds to the first batch not acknowledged when a blocked task resumes.
type rewindSource struct {
	batches [][]string

	mu        sync.Mutex
	next      int // batch to read
	committed int // batches acknowledged, in order
	reads     atomic.Int64
}

func (s *rewindSource) Open(context.Context) error  { return nil }
func (s *rewindSource) Close(context.Context) error { return nil }

func (s *rewindSource) Rewind(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = s.committed
	return nil
}

func (s *rewindSource) Read(ctx context.Context) (component.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= len(s.batches) {
		return component.Batch{}, io.EOF
	}
	n := s.next
	s.next++
	s.reads.Add(1)
	msgs := make([]message.Message, len(s.batches[n]))
	for i, p := range s.batches[n] {
		msgs[i] = message.Message{Payload: []byte(p), Event: []byte(p), Pos: message.Position{Stream: "s", Offset: int64(n*100 + i)}}
	}
	return component.Batch{Messages: msgs, Lane: "s", Ack: func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err == nil && s.committed == n {
			s.committed = n + 1
		}
	}}, nil
}

// failWhile fails, event-permanently, the events holding "bad" while
// failing is set, and passes the others on.
type failWhile struct{ failing atomic.Bool }

func (f *failWhile) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	for i := range in {
		if f.failing.Load() && bytes.Contains(in[i].Payload, []byte("bad")) {
			out.Fail(&in[i], component.EventPermanent(errors.New("refused by the transform")))
			continue
		}
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// TestBlockedBatchIsNotDeliveredTwiceAfterResume: under errors.tolerance
// = "none", a batch whose middle event fails in a transform blocks the
// task; the operator fixes the cause and resumes, the source reads the
// batch again, and each of its events reaches the sink once. The good
// outputs of the blocked batch were written (to the disk buffer, or to
// the sink) before the block, then again after the resume: duplicates at
// every block, not only after a crash.
func TestBlockedBatchIsNotDeliveredTwiceAfterResume(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		name := "sink"
		if buffered {
			name = "disk buffer"
		}
		t.Run(name, func(t *testing.T) {
			src := &rewindSource{batches: [][]string{{`"a"`, `"b"`}, {`"c"`, `"bad"`, `"d"`}, {`"e"`}}}
			sink := &memSink{}
			tr := &failWhile{}
			tr.failing.Store(true)
			cfg := task(src, sink, func(c *config.Task) {
				c.Tolerance = "none"
				c.Transforms = []config.Component{{Type: "failwhile", Instance: tr}}
				// Every batch in one flush: the batch before the failing one
				// is written, the failing one must not be.
				c.Engine.MaxWait = time.Hour
				if buffered {
					c.Engine.Buffer = &buffer.Options{Dir: t.TempDir(), MaxSize: 1 << 20}
				}
			})
			run, done, _ := startHeld(t, cfg)
			blockFixResume(t, run, done, func() { tr.failing.Store(false) }, sink, `"a"`, `"b"`, `"c"`, `"bad"`, `"d"`, `"e"`)
		})
	}
}

// inflateWhile turns the events holding "big" into an output too large for
// the disk buffer while inflating is set, and passes the others on.
type inflateWhile struct{ inflating atomic.Bool }

func (f *inflateWhile) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	for i := range in {
		if f.inflating.Load() && bytes.Contains(in[i].Payload, []byte("big")) {
			out.Emit(&in[i], bytes.Repeat([]byte("x"), 128<<10))
			continue
		}
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// TestEventTooLargeForTheBufferBlocksBeforeItsSiblingsAreAppended: under
// errors.tolerance = "none", an output too large for the disk buffer blocks
// the task; the events of its batch must not be in the buffer yet, or the
// batch read again after the resume appends them a second time.
func TestEventTooLargeForTheBufferBlocksBeforeItsSiblingsAreAppended(t *testing.T) {
	src := &rewindSource{batches: [][]string{{`"a"`, `"b"`}, {`"c"`, `"big"`, `"d"`}, {`"e"`}}}
	sink := &memSink{}
	tr := &inflateWhile{}
	tr.inflating.Store(true)
	cfg := task(src, sink, func(c *config.Task) {
		c.Tolerance = "none"
		c.Transforms = []config.Component{{Type: "inflatewhile", Instance: tr}}
		c.Engine.MaxWait = time.Hour
		c.Engine.Buffer = &buffer.Options{Dir: t.TempDir(), MaxSize: 64 << 10}
	})
	run, done, _ := startHeld(t, cfg)
	blockFixResume(t, run, done, func() { tr.inflating.Store(false) }, sink, `"a"`, `"b"`, `"c"`, `"big"`, `"d"`, `"e"`)
}

// blockFixResume waits for run to block, fixes the cause (fix), resumes it
// and waits for its end: each of want reached sink once, and the batch
// read twice counts once (in = delivered + filtered + dead_lettered +
// dropped once the task is idle).
func blockFixResume(t *testing.T, run *engine.Task, done <-chan error, fix func(), sink *memSink, want ...string) {
	t.Helper()
	testkit.WaitFor(t, "the task to block", func() bool { return run.State() == engine.Blocked })
	fix()
	run.Resume()
	if err := <-done; err != nil {
		t.Fatalf("run after the resume: %v", err)
	}
	seen := map[string]int{}
	for _, p := range sink.payloads() {
		seen[p]++
	}
	for _, p := range want {
		if seen[p] != 1 {
			t.Errorf("%s delivered %d times, want once; delivered %q", p, seen[p], sink.payloads())
		}
	}
	checkCounts(t, run.Stats())
}

// TestCountersAddUpAfterAFailedDeadLetterWrite: a dead-letter write that
// fails blocks the task; the batch and those after it in the same flush
// are read again after the resume. Each counts once: once the task is idle,
// in = delivered + filtered + dead_lettered + dropped.
func TestCountersAddUpAfterAFailedDeadLetterWrite(t *testing.T) {
	src := &rewindSource{batches: [][]string{{`"a"`}, {`"bad"`, `"b"`}, {`"c"`}}}
	sink := &memSink{}
	dlq := &memSink{}
	var dlqDown atomic.Bool
	dlqDown.Store(true)
	dlq.reject = func([]byte) error {
		if dlqDown.Load() {
			return component.EventPermanent(errors.New("dead-letter queue refuses"))
		}
		return nil
	}
	tr := &failWhile{}
	tr.failing.Store(true)
	cfg := task(src, sink, func(c *config.Task) {
		c.Transforms = []config.Component{{Type: "failwhile", Instance: tr}}
		c.DeadLetter = &config.Component{Type: "mem", Instance: dlq}
		c.Engine.MaxWait = time.Hour
	})
	run, done, _ := startHeld(t, cfg)
	testkit.WaitFor(t, "the task to block on the dead-letter queue", func() bool { return run.State() == engine.Blocked })
	dlqDown.Store(false)
	run.Resume()
	if err := <-done; err != nil {
		t.Fatalf("run after the resume: %v", err)
	}
	if got := dlq.payloads(); len(got) != 1 {
		t.Errorf("dead letters %q, want one", got)
	}
	checkCounts(t, run.Stats())
}
