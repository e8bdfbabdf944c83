package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
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
	o := opts(t)
	o.HoldBlocked = true
	run := engine.New(load(t, dir, text), o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
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
