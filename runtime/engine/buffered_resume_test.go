package engine_test

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestBufferedResumeRereadsUncommittedBatch: with a disk buffer and
// HoldBlocked, the drain blocks the task (tolerance none) on a batch it read
// but did not commit. After Resume ("task resumed from its last committed
// position") that batch must be delivered again; the buffer's read position
// must go back to the committed one. Before Buffer.Rewind the resumed
// drain read on past that batch and the next commit covered it: event 3
// was neither delivered, dead-lettered nor counted as dropped.
func TestBufferedResumeRereadsUncommittedBatch(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	// The poison event is refused (400: event-permanent) until the fix.
	h.answer.Store(func(body string) int {
		if strings.Contains(body, `"kind":"poison"`) {
			return 400
		}
		return 200
	})
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 50, func(i int) bool { return i == 3 })
	text := fileTask(dir, h.URL, retryFast+"\n[errors]\ntolerance = \"none\"\n")
	text = strings.Replace(text, `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 10, max_wait = "10ms" }
buffer = { type = "disk", path = "buf", max_size = "1MiB" }`, 1)
	run, done, cancel := startHeld(t, load(t, dir, text))
	testkit.WaitFor(t, "the task to block on the poison event", func() bool { return run.State() == engine.Blocked })
	// The cause is fixed: the sink now takes every event.
	h.answer.Store(func(string) int { return 200 })
	run.Resume()
	// The events after the blocked batch come through once resumed.
	testkit.WaitFor(t, "the last event to be delivered after the resume", func() bool { return h.delivered()[49] > 0 })
	cancel()
	<-done
	got := h.delivered()
	var missing []int
	for i := range 50 {
		if got[i] == 0 {
			missing = append(missing, i)
		}
	}
	b, err := buffer.Open(buffer.Options{Dir: filepath.Join(dir, "buf"), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	left := b.Stats().Records
	b.Close()
	if len(missing) > 0 {
		t.Errorf("records left in the buffer for a later run: %d", left)
		t.Fatalf("after resuming, events %v were never delivered (the batch read before the block was skipped, not re-read from the committed position); stats %+v", missing, run.Stats())
	}
}

// TestBufferedGroupFailureSurvivesResume: an input whose outputs straddle
// two reads of the disk buffer, and whose first output the sink refused
// in the first read (committed), must still reach the dead-letter queue
// when the dead-letter write at the end of the group fails, the task
// blocks and is resumed: the resumed drain reads the group's tail again.
// The failure was remembered only by the drain that stopped, so the
// resumed one counted the input delivered and the dead letter was lost.
func TestBufferedGroupFailureSurvivesResume(t *testing.T) {
	in := `{"k":"ok"}` + "\n" + `{"k":"split"}` + "\n"
	src := stdin.New(io.NopCloser(strings.NewReader(in)), &stdin.Config{Format: "json", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
	sink := &memSink{reject: func(p []byte) error {
		if string(p) == `"one"` {
			return component.EventPermanent(errors.New("422 refused"))
		}
		return nil
	}}
	var dlqDown atomic.Bool
	dlqDown.Store(true)
	dlq := &memSink{reject: func([]byte) error {
		if dlqDown.Load() {
			return component.EventPermanent(errors.New("dead-letter queue refuses"))
		}
		return nil
	}}
	cfg := task(src, sink, func(c *config.Task) {
		// "split" makes two outputs, "one" and "two": with reads of 2
		// records, the buffer's reads are [ok, "one"] and ["two"].
		c.Transforms = []config.Component{{Type: "flaky", Instance: &flaky{}}}
		c.DeadLetter = &config.Component{Type: "mem", Instance: dlq}
		c.Engine.MaxEvents = 2
		c.Engine.Buffer = &buffer.Options{Dir: t.TempDir(), MaxSize: 1 << 20}
	})
	run, done, cancel := startHeld(t, cfg)
	testkit.WaitFor(t, "the task to block on the dead-letter queue", func() bool { return run.State() == engine.Blocked })
	dlqDown.Store(false)
	run.Resume()
	testkit.WaitFor(t, "both inputs to be handled", func() bool {
		s := run.Stats()
		return s.Delivered+s.DeadLettered == 2
	})
	cancel()
	<-done
	dead := dlq.payloads()
	if len(dead) != 1 || !strings.Contains(dead[0], `"split"`) {
		t.Fatalf("dead letters %q, want the split event's; stats %+v", dead, run.Stats())
	}
	if s := run.Stats(); s.Delivered != 1 || s.DeadLettered != 1 {
		t.Fatalf("stats %+v, want 1 delivered and 1 dead-lettered", s)
	}
}
