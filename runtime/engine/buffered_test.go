package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/engine"
)

// TestDiskBufferSurvivesOutageAndRestart: with a disk buffer the source is
// committed once events are on disk; a sink outage and a restart lose
// nothing, and the events drain in order once the sink is back.
func TestDiskBufferSurvivesOutageAndRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 200, nil)
	// Tail mode: a read-mode run that completes forgets its checkpoint so
	// the next run reads the file again; a tail keeps its position.
	text := strings.Replace(fileTask(dir, h.URL, retryFast), "path = \"in.jsonl\"", "path = \"in.jsonl\"\nmode = \"tail\"\npoll_interval = \"20ms\"", 1)
	text = strings.Replace(text, `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 50, max_wait = "10ms" }
buffer = { type = "disk", path = "buf", max_size = "1MiB" }`, 1)
	text = strings.Replace(text, "[retry]\npolicy = \"custom\"\nattempts = 3", "[retry]\npolicy = \"custom\"\nattempts = 1000", 1)

	run := engine.New(load(t, dir, text), opts(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	// The source is drained into the buffer although the sink is down.
	deadline := time.Now().Add(10 * time.Second)
	for run.Stats().In < 200 || h.requests.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", run.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stop with a buffered backlog: %v", err)
	}
	if len(h.delivered()) != 0 {
		t.Fatal("delivered while down")
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "buf", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no buffer segments on disk")
	}

	// Restart with the sink back: the source has nothing new (its position
	// was committed), the buffer delivers everything, in order.
	h.answer.Store(func(string) int { return 200 })
	run = engine.New(load(t, dir, text), opts(t))
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- run.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); run.Stats().Delivered < 200; {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d after the restart", len(h.delivered()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := run.Stats(); s.In != 0 || s.Delivered != 200 {
		t.Fatalf("second run: %+v (the source must not re-read committed lines)", s)
	}
	got := h.delivered()
	for i := range 200 {
		if got[i] != 1 {
			t.Fatalf("event %d delivered %d times", i, got[i])
		}
	}
}

func TestDiskBufferDropOldestCounts(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 2000, nil)
	text := strings.Replace(fileTask(dir, h.URL, "[retry]\npolicy = \"none\"\n"), `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 50 }
buffer = { type = "disk", path = "buf", max_size = "64KiB", segment_size = "8KiB", when_full = "drop_oldest" }`, 1)
	run := engine.New(load(t, dir, text), opts(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() {
		for run.Stats().In < 2000 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	run.Run(ctx)
	s := run.Stats()
	if s.Dropped == 0 {
		t.Fatalf("a full drop_oldest buffer dropped nothing: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "dlq.jsonl")); err == nil {
		// Dead letters are fine too (the sink refused), but counts must add up.
		t.Logf("dead-lettered %d", s.DeadLettered)
	}
	if s.Delivered+s.Filtered+s.DeadLettered+s.Dropped > s.In {
		t.Fatalf("counted more than came in: %+v", s)
	}
}
