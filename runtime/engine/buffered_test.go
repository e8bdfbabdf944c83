package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/testkit"
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
	testkit.WaitFor(t, "every event in the buffer and the sink tried", func() bool {
		return run.Stats().In == 200 && h.requests.Load() >= 3
	})
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
	// was committed), the buffer delivers everything, in order. The sink
	// back is another server: a retry the stop cut short may still reach
	// the first one's handler late, which must not count as a delivery of
	// the second run (Close waits for its handlers).
	h.Close()
	if got := h.delivered(); len(got) != 0 {
		t.Fatalf("delivered while down: %v", got)
	}
	h2 := newHook(t)
	text = strings.Replace(text, h.URL, h2.URL, 1)
	h = h2
	run = engine.New(load(t, dir, text), opts(t))
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "every event delivered after the restart", func() bool { return run.Stats().Delivered == 200 })
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

// stuckClock never moves on its own: a retry wait lasts until the task
// stops, and the time-based log spacing sees no time pass.
type stuckClock struct{ now time.Time }

func (c stuckClock) Now() time.Time { return c.now }
func (c stuckClock) Sleep(ctx context.Context, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// lineCounter counts log lines holding a string.
type lineCounter struct {
	mu   sync.Mutex
	sub  string
	n    int
	rest io.Writer
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += strings.Count(string(p), c.sub)
	c.mu.Unlock()
	return c.rest.Write(p)
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestDiskBufferDropOldestCounts: with the sink down and the drain stuck
// retrying its first batch, 2000 events cannot fit a 64KiB buffer, so
// drop_oldest must drop, and every dropped input is counted while it
// happens (not only when the drain next gets round), exactly once. The
// drops are logged once per interval (here, with the clock standing
// still: once when they start and once at the stop), not once per append.
func TestDiskBufferDropOldestCounts(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 2000, nil)
	// The first retry waits until the stop (a clock that never moves): the
	// drain never gets past its first batch, however fast or slow the
	// machine, so the buffer must fill. The stop interrupts the wait.
	text := strings.Replace(fileTask(dir, h.URL, retryFast), `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 50 }
buffer = { type = "disk", path = "buf", max_size = "64KiB", segment_size = "8KiB", when_full = "drop_oldest" }`, 1)
	o := opts(t)
	o.Clock = stuckClock{time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	logs := &lineCounter{sub: "disk buffer dropped events", rest: zerolog.NewTestWriter(t)}
	o.Logger = zerolog.New(logs).Level(zerolog.InfoLevel)
	run := engine.New(load(t, dir, text), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "the source to read every event and the full buffer to drop some", func() bool {
		s := run.Stats()
		return s.In == 2000 && s.Dropped > 0
	})
	testkit.WaitFor(t, "the sink to be tried", func() bool { return h.requests.Load() > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stop with a buffered backlog: %v", err)
	}
	s := run.Stats()
	if s.Delivered != 0 || s.DeadLettered != 0 {
		t.Fatalf("the sink was down and the drain stuck, yet %+v", s)
	}
	// What is left in the buffer plus what was dropped is every input: the
	// batch the drain held (read, not committed) is either still in the
	// buffer or, its segment dropped since, counted at the stop. Nothing
	// vanished uncounted.
	b, err := buffer.Open(buffer.Options{Dir: filepath.Join(dir, "buf"), MaxSize: 64 << 10, SegmentSize: 8 << 10, WhenFull: buffer.DropOldest})
	if err != nil {
		t.Fatal(err)
	}
	left := b.Stats().Records
	b.Close()
	if left+s.Dropped != s.In {
		t.Fatalf("%d left in the buffer + %d dropped, want the %d read: %+v", left, s.Dropped, s.In, s)
	}
	if n := logs.count(); n < 1 || n > 2 {
		t.Fatalf("the drops were logged %d times, want once as they started and once at the stop at most", n)
	}
}

// unreachableSink is a sink whose Open fails as a Kafka or MQTT sink's
// does while its brokers cannot be reached (retryable), until up is set.
type unreachableSink struct {
	memSink
	up    atomic.Bool
	opens atomic.Int64
}

func (s *unreachableSink) Open(context.Context) error {
	s.opens.Add(1)
	if !s.up.Load() {
		return component.Retryable(errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), 0)
	}
	return nil
}

// shortClock shortens every retry wait to at most a millisecond: the
// backoff of opening goes on as written without the test waiting for it.
type shortClock struct{}

func (shortClock) Now() time.Time { return time.Now() }
func (shortClock) Sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(min(d, time.Millisecond))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// bufferedTask is a task from src to sink with a disk buffer in a
// temporary folder, whose retry waits are short (shortClock); mod changes
// its options.
func bufferedTask(t *testing.T, src component.Source, sink component.Sink, mod func(*engine.Options)) *engine.Task {
	t.Helper()
	dir := t.TempDir()
	def := task(src, sink, func(c *config.Task) {
		o := buffer.NewConfig().Options(dir, filepath.Join(dir, "buf"), zerolog.Nop())
		c.Engine.Buffer = &o
	})
	o := opts(t)
	o.Clock = shortClock{}
	if mod != nil {
		mod(&o)
	}
	return engine.New(def, o)
}

// TestDiskBufferReadsTheSourceWhileTheSinkCannotOpen: a buffered task
// started while its sink cannot be reached (an edge box booting with its
// uplink down) reads its source into the buffer and acknowledges it, as
// it does when the link drops later; the sink is opened by the drain once
// it can be, and everything is delivered in order. Before, the task stayed
// Starting with its source unopened until the sink was reachable: an MQTT
// broker's queue (1000 messages in Mosquitto) or an HTTP client took the
// whole outage.
func TestDiskBufferReadsTheSourceWhileTheSinkCannotOpen(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 20, perBatch: 10}
	sink := &unreachableSink{}
	run := bufferedTask(t, src, sink, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testkit.WaitFor(t, "the source read into the buffer and acknowledged while the sink cannot open", func() bool {
		src.mu.Lock()
		acked := len(src.acked["lane-0"])
		src.mu.Unlock()
		return run.Stats().In == 200 && acked == 20 && sink.opens.Load() > 1
	})
	if got := len(sink.payloads()); got != 0 {
		t.Fatalf("%d events written to a sink that never opened", got)
	}
	if st := run.State(); st != engine.Running {
		t.Fatalf("state %s while the sink cannot open, want Running (the source is read)", st)
	}
	// The operator sees why nothing is delivered (the admin API's errors).
	var sinkErr bool
	for _, e := range run.Errors() {
		sinkErr = sinkErr || e.Stage == "sink" && strings.Contains(e.Message, "connection refused")
	}
	if !sinkErr {
		t.Fatalf("recent errors %+v: want the sink's failure to open", run.Errors())
	}
	sink.up.Store(true) // the link is back
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	got := sink.payloads()
	if len(got) != 200 {
		t.Fatalf("delivered %d events, want 200", len(got))
	}
	for i, p := range got {
		if want := fmt.Sprintf(`"batch":%d,"i":%d}`, i/10, i%10); !strings.Contains(p, want) {
			t.Fatalf("event %d is %s: out of order", i, p)
		}
	}
	checkCounts(t, run.Stats())
}

// TestStopWhileTheSinkCannotOpenIsClean: a stop (SIGTERM, a reload) while
// the task still retries opening a sink it cannot reach ends the run
// cleanly: nothing was read, nothing is lost. It used to fail the task
// ("open sink: context canceled", StartFailed), so `sluice run` exited 1
// and systemd logged a failed stop at every reboot during an outage.
func TestStopWhileTheSinkCannotOpenIsClean(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 1, perBatch: 1}
	sink := &unreachableSink{}
	o := opts(t)
	o.Clock = shortClock{}
	run := engine.New(task(src, sink, nil), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "the sink's open to be retried", func() bool { return sink.opens.Load() > 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run stopped while opening: %v, want a clean stop", err)
	}
	if st := run.State(); st != engine.Stopped {
		t.Fatalf("state %s, want Stopped", st)
	}
	if in := run.Stats().In; in != 0 {
		t.Fatalf("%d events read, want none (the source never opened)", in)
	}
}

// refusedSink is unreachable at start (retryable), then refuses the task
// for good (an uplink back, with the credentials rejected).
type refusedSink struct {
	memSink
	opens atomic.Int64
}

func (s *refusedSink) Open(context.Context) error {
	if s.opens.Add(1) == 1 {
		return component.Retryable(errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), 0)
	}
	return component.TaskPermanent(errors.New("SASL authentication failed"))
}

// gateLog is a task log whose "task running" line waits until the task
// failed: the drain's open of the pending sink fails the task after the
// run loop set the state Running and before it reads, a window the run
// loop otherwise crosses too fast to see.
type gateLog struct {
	once   sync.Once
	failed chan struct{}
}

func (w *gateLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("task failed")) {
		w.once.Do(func() { close(w.failed) })
	}
	if bytes.Contains(p, []byte("task running")) {
		<-w.failed
	}
	return len(p), nil
}

// TestPendingSinkRefusedBeforeTheReadLoopStopsTheTask: the drain opens a
// pending sink at once, concurrently with the run loop starting to read.
// A refusal no retry fixes, met before the read loop registered its stop,
// failed the task (StartFailed) but the source went on being read into a
// buffer nothing drains: every event acknowledged, the run ending only
// when the source does (never, for a broker or a sensor).
func TestPendingSinkRefusedBeforeTheReadLoopStopsTheTask(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 200, perBatch: 1}
	run := bufferedTask(t, src, &refusedSink{}, func(o *engine.Options) {
		o.Logger = zerolog.New(&gateLog{failed: make(chan struct{})})
	})
	err := run.Run(context.Background())
	if !errors.Is(err, engine.ErrStartFailed) {
		t.Fatalf("Run returned %v, want ErrStartFailed (the sink refused the task)", err)
	}
	if st := run.State(); st != engine.StartFailed {
		t.Fatalf("state %s, want StartFailed", st)
	}
	src.mu.Lock()
	read := src.next
	src.mu.Unlock()
	if read != 0 {
		t.Fatalf("%d batches read after the task failed, want none", read)
	}
}

// refusingSource refuses the task for good when opened.
type refusingSource struct{ laneSource }

func (*refusingSource) Open(context.Context) error {
	return component.TaskPermanent(errors.New("SASL authentication failed"))
}

// closeHookSink calls onClose when closed.
type closeHookSink struct {
	memSink
	onClose func()
}

func (s *closeHookSink) Close(context.Context) error {
	s.onClose()
	return nil
}

// TestStopAfterAPermanentOpenFailureStillFails: a source refusing the
// task for good fails it, even when a stop comes while the sinks already
// opened are closed again (which may take the shutdown timeout): a clean
// stop there hid the refusal (`sluice run` exited 0, state Stopped, the
// cause logged at info level) and the supervisor took the task as stopped
// on purpose.
func TestStopAfterAPermanentOpenFailureStillFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &closeHookSink{onClose: cancel} // the stop arrives meanwhile
	run := engine.New(task(&refusingSource{}, sink, nil), opts(t))
	err := run.Run(ctx)
	if !errors.Is(err, engine.ErrStartFailed) || !strings.Contains(err.Error(), "SASL") {
		t.Fatalf("Run returned %v, want ErrStartFailed with the refusal", err)
	}
	if st := run.State(); st != engine.StartFailed {
		t.Fatalf("state %s, want StartFailed", st)
	}
}

// TestReplayWaitsForThePendingSink: a dead-letter replay goes to the sink
// directly, and a buffered task whose sink could not be opened yet is
// Running: the replay wrote to a sink never opened (a Kafka, NATS or
// Redis sink refuses: "Write before Open"; the events failed again and
// went back to the dead-letter queue, the replay answered 200), beside
// the drain opening it. It is refused as for a task not running.
func TestReplayWaitsForThePendingSink(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 1, perBatch: 1}
	sink := &unreachableSink{}
	run := bufferedTask(t, src, sink, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testkit.WaitFor(t, "the task running with its sink not open", func() bool {
		return run.State() == engine.Running && sink.opens.Load() > 1
	})
	_, err := run.Replay(ctx, [][]byte{[]byte(`{"replayed":1}`)})
	if !errors.Is(err, engine.ErrCannotSeek) {
		t.Fatalf("Replay returned %v, want a refusal (ErrCannotSeek: the sink is not open yet)", err)
	}
	if got := sink.payloads(); len(got) != 0 {
		t.Fatalf("the replay wrote %q to a sink not open", got)
	}
}
