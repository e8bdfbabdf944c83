package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// skipClock is the engine clock of a simulated outage: every retry wait
// passes at once and moves the time on by its length.
type skipClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skipClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the time on by d.
func (c *skipClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// orderedHook records the event numbers it accepts, in arrival order.
type orderedHook struct {
	*httptest.Server
	mu       sync.Mutex
	got      []int
	requests atomic.Int64
	up       func() bool
}

func newOrderedHook(t *testing.T, up func() bool) *orderedHook {
	h := &orderedHook{up: up}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		if !h.up() {
			http.Error(w, "link down", http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var ev struct{ Data struct{ N int } }
			if err := json.Unmarshal([]byte(l), &ev); err == nil {
				h.got = append(h.got, ev.Data.N)
			}
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *orderedHook) received() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got...)
}

// gauge reads a task's gauge from the set's exposition (-1 when absent).
func gauge(t *testing.T, ms *metrics.Set, name string) float64 {
	t.Helper()
	if v, ok := metricstest.Gather(t, ms).Value(name); ok {
		return v
	}
	return -1
}

// TestDiskBufferRidesOutADayOffline: under the default retry policy (3
// retries within a minute), a buffered task whose sink is down for a
// simulated day keeps every event: the drain retries at the policy's cap
// (20 s, checked in runtime/delivery) for as long as the outage lasts,
// the backlog gauges show the
// events, their bytes and their age all along, and once the link is back
// everything arrives once, in order, with nothing dead-lettered or dropped.
func TestDiskBufferRidesOutADayOffline(t *testing.T) {
	const events = 5000
	dir := t.TempDir()
	start := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	clk := &skipClock{now: start}
	var release atomic.Bool
	h := newOrderedHook(t, func() bool { return release.Load() && clk.Now().Sub(start) >= 24*time.Hour })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), events, nil)
	text := strings.Replace(fileTask(dir, h.URL, ""), `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 200, max_wait = "10ms" }
buffer = { type = "disk", path = "buf", max_size = "64MiB" }`, 1)
	o := opts(t)
	o.Clock = clk
	o.Metrics = metrics.New()
	run := engine.New(load(t, dir, text), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	t.Cleanup(func() { // on failure too: no goroutine logs after the test
		cancel()
		<-done
	})
	reg := o.Metrics

	// Every retry wait passes at once, moving the clock on; a day of them
	// (4,300 tries) would take minutes under the race detector, so once
	// the drain is well past the policy the day passes in one step, the
	// drain still trying.
	testkit.WaitFor(t, "every event in the buffer and the sink tried past the policy", func() bool {
		return gauge(t, reg, "sluice_buffer_records") == events && h.requests.Load() > 10
	})
	clk.Advance(25 * time.Hour)
	tried := h.requests.Load()
	testkit.WaitFor(t, "the drain to go on trying after the day", func() bool { return h.requests.Load() > tried+3 })
	if got := gauge(t, reg, "sluice_buffer_records"); got != events {
		t.Fatalf("sluice_buffer_records = %v during the outage, want %d", got, events)
	}
	if got := gauge(t, reg, "sluice_buffer_bytes"); got < events*20 {
		t.Fatalf("sluice_buffer_bytes = %v during the outage", got)
	}
	if got := gauge(t, reg, "sluice_buffer_oldest_age_seconds"); got < (25 * time.Hour).Seconds() {
		t.Fatalf("sluice_buffer_oldest_age_seconds = %v after 25 simulated hours", got)
	}
	if s := run.Stats(); s.DeadLettered != 0 || s.Dropped != 0 || s.Delivered != 0 {
		t.Fatalf("during the outage: %+v", s)
	}
	if s := run.Stats(); s.Retries < 10 {
		t.Fatalf("%d retries counted, want every try past the policy counted", s.Retries)
	}

	release.Store(true) // the link is back
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	got := h.received()
	if len(got) != events {
		t.Fatalf("received %d events, want %d", len(got), events)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("event %d arrived in place %d: out of order or repeated", n, i)
		}
	}
	s := run.Stats()
	if s.Delivered != events || s.DeadLettered != 0 || s.Dropped != 0 {
		t.Fatalf("after the outage: %+v", s)
	}
	checkCounts(t, s)
	// The task ended and its buffer closed: its gauges are gone.
	if got := gauge(t, reg, "sluice_buffer_records"); got != -1 {
		t.Fatalf("sluice_buffer_records = %v after the task ended", got)
	}
}

// TestDiskBufferFullDiskBackPressures: the buffer's folder is a 2 MiB file
// system while the sink is down, and max_size allows far more. When the
// disk fills, the buffer stops accepting and the source waits (it reads
// no further than what the buffer holds plus what is in flight), the
// task stays running, and once the sink is back every event arrives once,
// in order: nothing was lost or corrupted on the full disk.
func TestDiskBufferFullDiskBackPressures(t *testing.T) {
	const events = 20000 // about 4 MiB in the buffer: twice the disk
	dir := t.TempDir()
	bufDir := testkit.Tmpfs(t, 2<<20)
	var up atomic.Bool
	h := newOrderedHook(t, up.Load)
	writeEvents(t, filepath.Join(dir, "in.jsonl"), events, nil)
	text := strings.Replace(fileTask(dir, h.URL, retryFast), `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 100, max_wait = "10ms" }
buffer = { type = "disk", path = "`+bufDir+`", max_size = "64MiB", segment_size = "256KiB" }`, 1)
	o := opts(t)
	o.Metrics = metrics.New()
	run := engine.New(load(t, dir, text), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	testkit.WaitFor(t, "the disk to fill and the source to wait", func() bool {
		return h.requests.Load() > 3 && gauge(t, o.Metrics, "sluice_buffer_records") > 0 &&
			testkit.Blocked("(*Buffer).waitForDiskLocked")
	})
	s := run.Stats()
	if s.In >= events {
		t.Fatalf("the source read all %d events onto a full disk", s.In)
	}
	if st := run.State(); st != engine.Running {
		t.Fatalf("task %v on a full disk, want it running (waiting): %v", st, run.Reason())
	}
	if s.DeadLettered != 0 || s.Dropped != 0 {
		t.Fatalf("on a full disk: %+v", s)
	}

	up.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	got := h.received()
	if len(got) != events {
		t.Fatalf("received %d events, want %d", len(got), events)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("event %d arrived in place %d", n, i)
		}
	}
	s = run.Stats()
	if s.Delivered != events || s.DeadLettered != 0 || s.Dropped != 0 {
		t.Fatalf("after the disk freed: %+v", s)
	}
}

// TestBufferGaugesSurviveAReload: a reload may run a new task of the same
// name next to the old one for a moment; the old one stopping afterwards
// leaves the new one's backlog gauges in place.
func TestBufferGaugesSurviveAReload(t *testing.T) {
	h := newOrderedHook(t, func() bool { return false })
	ms := metrics.New()
	start := func(events int) (*engine.Task, func()) {
		dir := t.TempDir() // its own state: the file source's checkpoint is locked
		writeEvents(t, filepath.Join(dir, "in.jsonl"), events, nil)
		text := strings.Replace(fileTask(dir, h.URL, retryFast), `batch = { max_events = 500, max_wait = "50ms" }`,
			`batch = { max_events = 5 }
buffer = { type = "disk", path = "buf" }`, 1)
		o := opts(t)
		o.Metrics = ms
		run := engine.New(load(t, dir, text), o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run.Run(ctx) }()
		return run, func() { cancel(); <-done }
	}
	_, stopOld := start(10)
	testkit.WaitFor(t, "the old task's backlog", func() bool { return gauge(t, ms, "sluice_buffer_records") == 10 })
	_, stopNew := start(7)
	defer stopNew()
	testkit.WaitFor(t, "the new task's backlog", func() bool { return gauge(t, ms, "sluice_buffer_records") == 7 })
	stopOld()
	if got := gauge(t, ms, "sluice_buffer_records"); got != 7 {
		t.Fatalf("sluice_buffer_records = %v after the old task stopped, want the new task's 7 (-1: gone)", got)
	}
}

// started runs run in the background; stop cancels it and returns Run's
// error. The test fails if Run does not end within testkit's wait: a stop
// waiting out a long shutdown deadline does not pass.
func started(t *testing.T, run *engine.Task) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	return func() error {
		cancel()
		return runEnd(t, done)
	}
}

// runEnd waits for Run's error on done.
func runEnd(t *testing.T, done <-chan error) error {
	t.Helper()
	var err error
	testkit.WaitFor(t, "Run to end", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	return err
}

// redeliver runs the task of text again with the sink back and waits until
// it has received n distinct events.
func redeliver(t *testing.T, h *hook, dir, text string, n int) {
	t.Helper()
	h.answer.Store(func(string) int { return 200 })
	stop := started(t, engine.New(load(t, dir, text), opts(t)))
	testkit.WaitFor(t, "every event delivered by the next run", func() bool { return len(h.delivered()) == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// fullBufferTask is fileTask with a 64 KiB disk buffer under when_full =
// "block", in 8 KiB segments, and sink batches of 50.
func fullBufferTask(dir, url, extra string) string {
	return strings.Replace(fileTask(dir, url, extra), `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 50 }
buffer = { type = "disk", path = "buf", max_size = "64KiB", segment_size = "8KiB", when_full = "block" }`, 1)
}

// TestStopWithAFullBlockingBufferIsClean: with the sink down and the disk
// buffer full under when_full = "block", the workers wait for room that
// only the sink's return can free. A stop must not wait for it: before 8
// Dec it waited the whole shutdown deadline and failed ("shutdown deadline
// passed with N batches not delivered", `sluice run` exiting 1, systemd
// logging a failed stop). The batches waiting were never acknowledged, so
// the next run reads them again and nothing is lost.
func TestStopWithAFullBlockingBufferIsClean(t *testing.T) {
	const events = 2000
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), events, nil)
	text := fullBufferTask(dir, h.URL, retryFast)
	o := opts(t)
	// The drain's retry waits last until the stop: the buffer must fill.
	o.Clock = stuckClock{time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	// Long enough that waiting it out cannot pass for a clean stop.
	o.ShutdownTimeout = 10 * time.Minute
	o.Metrics = metrics.New()
	run := engine.New(load(t, dir, text), o)
	stop := started(t, run)
	testkit.WaitFor(t, "the buffer to be full with the source waiting", func() bool {
		return gauge(t, o.Metrics, "sluice_buffer_full") == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("stop with a full buffer and the sink down: %v, want a clean stop", err)
	}
	if s := run.Stats(); s.Dropped != 0 || s.Delivered != 0 {
		t.Fatalf("first run: %+v", s)
	}
	// The sink is back: the backlog and the rest of the file arrive, every
	// event at least once.
	redeliver(t, h, dir, text, events)
}

// TestBlockedWithAFullBufferEnds: a task whose drain blocks it (tolerance
// none, an event the sink refuses) while its workers wait for room in the
// full buffer must end in Blocked (so `sluice run` can report it and exit),
// not wait for room nothing will free any more: before 8 Dec Run never
// returned.
func TestBlockedWithAFullBufferEnds(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	var refuse atomic.Bool
	h.answer.Store(func(string) int {
		if refuse.Load() {
			return 400
		}
		return 503
	})
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 2000, nil)
	o := opts(t)
	o.Metrics = metrics.New()
	run := engine.New(load(t, dir, fullBufferTask(dir, h.URL, retryFast+"\n[errors]\ntolerance = \"none\"\n")), o)
	done := make(chan error, 1)
	go func() { done <- run.Run(context.Background()) }()
	testkit.WaitFor(t, "the buffer to be full with the source waiting", func() bool {
		return gauge(t, o.Metrics, "sluice_buffer_full") == 1
	})
	refuse.Store(true)
	if err := runEnd(t, done); !errors.Is(err, engine.ErrBlocked) || run.State() != engine.Blocked {
		t.Fatalf("Run: %v in state %v, want ErrBlocked", err, run.State())
	}
	if s := run.Stats(); s.Delivered != 0 || s.Dropped != 0 {
		t.Fatalf("%+v", s)
	}
}

// TestStopCutsAHungRetryShort: a buffered task's drain retrying a sink that
// now hangs (an uplink that drops packets: a Kafka produce or an HTTP
// request waits for its timeout) stops at once instead of holding the stop
// until the try times out or the shutdown deadline passes (before 8 Dec a
// Kafka sink held it about 28 s). The batch stays in the buffer.
func TestStopCutsAHungRetryShort(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	var tries atomic.Int64
	h.answer.Store(func(string) int {
		if tries.Add(1) == 1 {
			return 503
		}
		return -1 // hang until the client gives up
	})
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 20, nil)
	text := strings.Replace(fileTask(dir, h.URL, retryFast), `timeout = "30s"`, `timeout = "10m"`, 1)
	text = strings.Replace(text, `batch = { max_events = 500, max_wait = "50ms" }`,
		`batch = { max_events = 50 }
buffer = { type = "disk", path = "buf", max_size = "1MiB" }`, 1)
	o := opts(t)
	o.ShutdownTimeout = 10 * time.Minute // waiting it out cannot pass
	run := engine.New(load(t, dir, text), o)
	stop := started(t, run)
	testkit.WaitFor(t, "a retry to hang", func() bool { return tries.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v, want a clean stop", err)
	}
	if s := run.Stats(); s.Delivered != 0 || s.Dropped != 0 || s.DeadLettered != 0 {
		t.Fatalf("%+v", s)
	}
	redeliver(t, h, dir, text, 20) // nothing lost
}

// TestStopWhileTheSinkFailsIsClean: without a disk buffer, a stop while the
// sink fails every try does not wait for it: the retries are cut short,
// the batches are not acknowledged (the file source reads them again), and
// the stop is clean. Before 8 Dec it waited out --shutdown-timeout and
// failed ("shutdown deadline passed"), so `sluice run` exited 1 at every
// stop during an outage.
func TestStopWhileTheSinkFailsIsClean(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 20, nil)
	text := fileTask(dir, h.URL, `
[retry]
policy = "custom"
attempts = 1000
initial = "1s"
max = "1s"
`)
	text = strings.Replace(text, "path = \"in.jsonl\"", "path = \"in.jsonl\"\nmode = \"tail\"\npoll_interval = \"20ms\"", 1)
	o := opts(t)
	o.ShutdownTimeout = 10 * time.Minute // waiting it out cannot pass
	run := engine.New(load(t, dir, text), o)
	stop := started(t, run)
	testkit.WaitFor(t, "the sink to fail a retry", func() bool { return h.requests.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v, want a clean stop", err)
	}
	if s := run.Stats(); s.Delivered != 0 || s.DeadLettered != 0 || s.Dropped != 0 {
		t.Fatalf("%+v", s)
	}
	redeliver(t, h, dir, text, 20)
}

// TestStopWithAFullBufferKeepsWhatWasStored: the worker appends a flush's
// outputs in chunks; when the buffer fills part way through, the batches
// whose outputs were all stored before the stop are acknowledged (the
// drain delivers them), and only the batch whose append was cut is read
// again: at most that one batch is delivered twice by the next run.
func TestStopWithAFullBufferKeepsWhatWasStored(t *testing.T) {
	const events, perBatch = 2000, 5
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 503 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), events, nil)
	text := strings.Replace(fullBufferTask(dir, h.URL, retryFast), `batch = { max_events = 50 }`,
		`batch = { max_events = 40, max_wait = "1h" }`, 1)
	text = strings.Replace(text, `path = "in.jsonl"`, `path = "in.jsonl"
batch = { max_events = 5 }`, 1)
	text = strings.Replace(text, `name = "d"`, `name = "d"
max_in_flight = 64`, 1)
	o := opts(t)
	o.Clock = stuckClock{time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	o.ShutdownTimeout = time.Minute
	o.Metrics = metrics.New()
	run := engine.New(load(t, dir, text), o)
	stop := started(t, run)
	testkit.WaitFor(t, "the buffer to be full with the source waiting", func() bool {
		return gauge(t, o.Metrics, "sluice_buffer_full") == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	acked := run.Stats().In
	left, _ := run.BufferLeft()
	if left < acked || left-acked >= perBatch {
		t.Fatalf("the buffer holds %d records for %d events acknowledged: %d stored records belong to batches given back to the source, want fewer than one batch (%d)", left, acked, left-acked, perBatch)
	}
	redeliver(t, h, dir, text, events)
	twice := 0
	for _, n := range h.delivered() {
		if n > 1 {
			twice++
		}
	}
	if twice >= perBatch {
		t.Fatalf("%d events delivered twice, want fewer than one source batch (%d)", twice, perBatch)
	}
}
