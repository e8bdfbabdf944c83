package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// gateSink holds its first write until release is closed, and rejects
// every record while failing is set.
type gateSink struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	failing atomic.Bool
	n       atomic.Int64
}

func (s *gateSink) Open(context.Context) error  { return nil }
func (s *gateSink) Close(context.Context) error { return nil }
func (s *gateSink) Write(ctx context.Context, msgs []message.Message) error {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.failing.Load() {
		return component.EventPermanent(errors.New("rejected"))
	}
	s.n.Add(int64(len(msgs)))
	return nil
}

// TestPausedThenBlockedTaskResumes: a task paused while a batch is in
// flight, which then blocks on that batch (tolerance none), and is resumed
// through the admin API (HoldBlocked), runs again: the resume lifts the
// pause too. It said Running and read nothing, the old pause still in
// force, and Pause then did nothing (review).
func TestPausedThenBlockedTaskResumes(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 1 << 30, perBatch: 5} // runs until canceled
	sink := &gateSink{entered: make(chan struct{}), release: make(chan struct{})}
	sink.failing.Store(true)
	cfg := task(src, sink, func(c *config.Task) {
		c.Tolerance = "none"
		c.Engine.MaxInFlight = 1
		c.Engine.MaxEvents = 5
	})
	run, done, cancel := startHeld(t, cfg)

	<-sink.entered // the first batch is in flight
	run.Pause()
	if s := run.State(); s != engine.Paused {
		t.Fatalf("state after Pause: %v", s)
	}
	close(sink.release) // the batch fails: the task blocks
	testkit.WaitFor(t, "the task to block", func() bool { return run.State() == engine.Blocked })

	sink.failing.Store(false)
	run.Resume() // the admin API's POST /tasks/t/resume
	testkit.WaitFor(t, "the task to leave Blocked", func() bool { return run.State() != engine.Blocked })

	testkit.WaitFor(t, "deliveries after the resume", func() bool { return sink.n.Load() > 0 })
	if s := run.State(); s != engine.Running {
		t.Fatalf("state after the resume: %v, want Running", s)
	}
	run.Pause() // and it can be paused again
	if s := run.State(); s != engine.Paused {
		t.Fatalf("state after a new Pause: %v, want Paused", s)
	}
	cancel()
	<-done
}

// gatedRewind holds its first Rewind until release is closed.
type gatedRewind struct {
	*rewindSource
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *gatedRewind) Rewind(ctx context.Context) error {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.rewindSource.Rewind(ctx)
}

// TestSecondResumeIsNotKeptForTheNextBlock: two Resume calls on a blocked
// task (an operator clicking twice, two consoles) resume it once. The
// second, made while the first was still rewinding the source (the task
// still said Blocked), was kept: the task's next block resumed itself at
// once, without anyone asking, reading the failing batch again.
func TestSecondResumeIsNotKeptForTheNextBlock(t *testing.T) {
	src := &gatedRewind{rewindSource: &rewindSource{batches: [][]string{{`"bad"`}}}, entered: make(chan struct{}), release: make(chan struct{})}
	sink := &memSink{}
	tr := &failWhile{}
	tr.failing.Store(true)
	cfg := task(src, sink, func(c *config.Task) {
		c.Tolerance = "none"
		c.Transforms = []config.Component{{Type: "failwhile", Instance: tr}}
	})
	run, done, _ := startHeld(t, cfg)
	testkit.WaitFor(t, "the task to block", func() bool { return run.State() == engine.Blocked })
	tr.failing.Store(false)
	run.Resume()
	<-src.entered // resuming: the source rewinds
	run.Resume()  // asked again meanwhile
	close(src.release)
	if err := <-done; err != nil {
		t.Fatalf("run after the resume: %v", err)
	}
	if got := sink.payloads(); len(got) != 1 {
		t.Fatalf("delivered %q, want the event once", got)
	}
	if n := run.SpareResumes(); n != 0 {
		t.Fatalf("%d resume(s) left queued: the task's next block would resume by itself", n)
	}
}
