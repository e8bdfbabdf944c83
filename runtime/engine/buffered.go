package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/logx"
)

// A task with [sink] buffer writes its outputs to a disk buffer instead of
// the sink: the source is acknowledged once they are on disk, and a drain
// goroutine delivers them in order, dead-letters what fails, and commits
// its read position. Each input's outputs are appended together, the last
// one tagged, so the drain counts an input delivered when all its outputs
// were, and dead-letters it once when any failed.

// drainer is the state of the drain goroutine.
type drainer struct {
	t       *Task
	results []delivery.Result
	dead    []delivery.Record
	scratch []byte
	// the input being counted, when its outputs straddle two reads, was
	// dead-lettered already
	groupFailed bool
}

func (t *Task) openBuffer() error {
	if t.cfg.Engine.Buffer == nil {
		return nil
	}
	bo := *t.cfg.Engine.Buffer
	if bo.Now == nil {
		bo.Now = t.opts.Clock.Now
	}
	b, err := buffer.Open(bo)
	if err != nil {
		return fmt.Errorf("disk buffer %s: %w", t.cfg.Engine.Buffer.Dir, err)
	}
	t.buf = b
	t.registerBufferMetrics()
	// Appends stay well below a segment so that one never needs more room
	// than the buffer can free.
	seg := t.cfg.Engine.Buffer.SegmentSize
	if seg <= 0 {
		seg = min(t.cfg.Engine.Buffer.MaxSize/8, buffer.DefaultSegmentSize)
		if seg <= 0 {
			seg = buffer.DefaultSegmentSize
		}
	}
	t.bufChunk = int(max(seg/4, 1024))
	return nil
}

// BufferBacklog returns how many undelivered records the disk buffer in dir
// holds. It opens the buffer for a moment (checking and repairing it as the
// next run would), so it fails while a task or another process uses it.
func BufferBacklog(dir string) (uint64, error) {
	b, err := buffer.Open(buffer.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		return 0, err
	}
	n := b.Stats().Records
	return n, b.Close()
}

// startDrain runs the drain until stopDrain.
func (t *Task) startDrain() {
	if t.buf == nil {
		return
	}
	// A drain that stopped without committing its batch (the task blocked,
	// then resumed) left the read position past it: read on from the last
	// commit, as a restart does. An error (the buffer closed or failed) is
	// met again by the drain's first Read, which stops the task.
	_ = t.buf.Rewind()
	// Stopping ends the wait for more records at once, but lets a delivery
	// under way finish (within the shutdown deadline), so a stop does not
	// turn into duplicates on the next run.
	readCtx, stopRead := context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.drainCancel = func() {
		stopRead()
		timer := time.AfterFunc(t.opts.ShutdownTimeout, cancel)
		<-done
		timer.Stop()
		cancel()
	}
	t.drainDone = done
	d := &drainer{t: t}
	go func() {
		defer close(done)
		d.run(readCtx, ctx)
	}()
}

// waitDrained blocks until the buffer holds nothing undelivered, the drain
// stopped (blocked, failed) or ctx ends.
func (t *Task) waitDrained(ctx context.Context) {
	if t.buf == nil {
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for t.buf.Stats().Records > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.drainDone:
			return
		case <-tick.C:
		}
	}
}

// stopDrain ends the drain after the delivery under way: records not
// delivered stay in the buffer for the next run.
func (t *Task) stopDrain() {
	if t.drainCancel == nil {
		return
	}
	t.drainCancel()
	t.drainCancel = nil
}

func (d *drainer) run(readCtx, ctx context.Context) {
	t := d.t
	max := t.cfg.Engine.MaxEvents
	deliver := t.deliver
	deliver.Interrupt = readCtx.Done()
	// The events are on disk: a retryable failure is retried at the
	// policy's cap until the sink is back, whatever the policy, instead of
	// being dead-lettered or dropped once the policy is spent.
	deliver.Persist = true
	// Past the policy the retries go on for as long as the outage lasts
	// (every second under policy "none"): log them once a minute, count
	// them all.
	logRetry, policy := deliver.OnRetry, deliver.Policy
	var loggedAt time.Time
	deliver.OnRetry = func(attempt int, wait time.Duration, err error) {
		now := t.opts.Clock.Now()
		if attempt <= policy.Attempts || loggedAt.IsZero() || now.Sub(loggedAt) >= time.Minute {
			if attempt > policy.Attempts {
				loggedAt = now
				t.log.Warn().Err(err).Int(logx.Attempt, attempt).Dur("wait", wait).
					Msg("the sink is still failing past the retry policy; the events wait in the disk buffer and the batch is tried again at the policy's longest interval (logged once a minute)")
			}
			if logRetry != nil {
				logRetry(attempt, wait, err)
			}
			return
		}
		t.stats.retries.Add(1)
		t.m.retries.Inc()
	}
	defer t.countBufferDrops() // what was dropped while the last batch was under way
	if !t.openPendingSink(readCtx) {
		return
	}
	for {
		t.countBufferDrops()
		if readCtx.Err() != nil {
			return
		}
		b, err := t.buf.Read(readCtx, max)
		if err != nil {
			if readCtx.Err() == nil && !errors.Is(err, buffer.ErrClosed) {
				t.block(blockedByBuffer, fmt.Errorf("reading the disk buffer: %w", err))
			}
			return
		}
		if cap(d.results) < len(b.Msgs) {
			d.results = make([]delivery.Result, len(b.Msgs))
		}
		res := d.results[:len(b.Msgs)]
		began := time.Now()
		e := &t.cfg.Engine
		for start, end := 0, 0; start < len(b.Msgs); start = end {
			end = start + cut(b.Msgs[start:], e.MaxEvents, e.MaxBytes)
			if err := deliver.Deliver(ctx, b.Msgs[start:end], res[start:end]); err != nil {
				var s *delivery.Stop
				if errors.As(err, &s) && ctx.Err() == nil && !errors.Is(err, delivery.ErrInterrupted) {
					t.stop(StartFailed, s.Err)
				}
				return // not committed: read again by the next run
			}
		}
		t.m.write.Observe(time.Since(began).Seconds())
		out, bytes, delivered := d.account(b, res, time.Now())
		t.stats.out.Add(out)
		t.stats.bytesOut.Add(bytes)
		t.m.out.Add(out)
		t.m.bytesOut.Add(bytes)
		t.countSink(len(b.Msgs), int(out))
		if sink := t.obs.sink(); t.obs.taps.active(sink) && int(out) == len(b.Msgs) {
			t.obs.taps.offer(sink, b.Msgs)
		}
		if len(d.dead) > 0 {
			if err := t.deadLetter(ctx, d.dead, &d.scratch); err != nil {
				return // blocked (tolerance none) or stopping: not committed
			}
		}
		t.stats.delivered.Add(delivered)
		if err := t.buf.Commit(b.Cursor); err != nil {
			t.block(blockedByBuffer, fmt.Errorf("committing the disk buffer: %w", err))
			return
		}
	}
}

// account counts what the sink took of batch b (res: the results of its
// records) and gathers in d.dead a dead-letter record for each group with a
// failed record: the first failure of the group, in the batch where it
// happens. A group's outputs can straddle two reads, and the first read is
// committed before the second is delivered: a failure kept for the group's
// end would be lost with the drain (a block on the dead-letter queue and a
// resume, a stop or a crash before the second read was committed), and
// the group counted delivered when its tail is read again. groupFailed only
// keeps a later failure of the same group from dead-lettering it twice,
// and the group from being counted delivered.
func (d *drainer) account(b buffer.Batch, res []delivery.Result, now time.Time) (out, bytes, delivered uint64) {
	d.dead = d.dead[:0]
	if b.Gap {
		// The rest of the group went with a drop (counted there): the
		// next group is not blamed for its failure.
		d.groupFailed = false
	}
	for i := range b.Msgs {
		m := &b.Msgs[i]
		if r := res[i]; r.Err != nil {
			if !d.groupFailed {
				d.groupFailed = true
				d.dead = append(d.dead, delivery.Record{Event: m.Event, Task: d.t.cfg.Name, Stage: "sink", Err: r.Err, Attempts: r.Attempts, Pos: m.Pos, Time: now})
			}
		} else {
			out++
			bytes += uint64(len(m.Payload))
		}
		if b.Tags[i].Last {
			if !d.groupFailed {
				delivered++
			}
			d.groupFailed = false
		}
	}
	return out, bytes, delivered
}

// registerBufferMetrics exposes the backlog as gauges computed when they
// are scraped, so that they are true at every moment: while the sink is
// down and nothing is committed they grow with every append.
func (t *Task) registerBufferMetrics() {
	b, clock, ms, name := t.buf, t.opts.Clock, t.opts.Metrics, t.cfg.Name
	// The same task run again in this process (a restart, a reload): the
	// new buffer's gauges replace the old ones.
	gauge := func(metric, help string, f func(buffer.Stats) float64) func() {
		return ms.GaugeFunc(metric, help, "task").Set(func() float64 { return f(b.Stats()) }, name)
	}
	t.bufMetrics = []func(){
		gauge("buffer_records", "Records in the task's disk buffer, not yet delivered.",
			func(s buffer.Stats) float64 { return float64(s.Records) }),
		gauge("buffer_bytes", "Size of the task's disk buffer files.",
			func(s buffer.Stats) float64 { return float64(s.Bytes) }),
		gauge("buffer_full", "1 while the task's source waits for room in its disk buffer (max_size reached under when_full = \"block\", or the file system full), else 0.",
			func(s buffer.Stats) float64 {
				if s.Full {
					return 1
				}
				return 0
			}),
		gauge("buffer_oldest_age_seconds", "Age of the oldest record in the task's disk buffer not yet delivered (0 when empty).",
			func(s buffer.Stats) float64 {
				if s.Oldest.IsZero() {
					return 0
				}
				return max(clock.Now().Sub(s.Oldest).Seconds(), 0)
			}),
	}
}

// unregisterBufferMetrics removes the task's backlog gauges, unless a new
// run of the same task (a reload) registered its own meanwhile.
func (t *Task) unregisterBufferMetrics() {
	for _, remove := range t.bufMetrics {
		remove()
	}
	t.bufMetrics = nil
}

// countBufferDrops counts the inputs the buffer dropped (when_full =
// "drop_oldest") or found corrupt as dropped by policy, once each: the
// workers call it after appending (where drops happen), the drain after
// reading.
func (t *Task) countBufferDrops() {
	st := t.buf.Stats()
	t.bufLostMu.Lock()
	defer t.bufLostMu.Unlock()
	if n := st.DroppedGroups + st.LostGroups; n > t.bufLost {
		t.stats.dropped.Add(n - t.bufLost)
		t.m.dropped.Add(n - t.bufLost)
		t.bufLost = n
	}
	t.logBufferDropsLocked(false)
}

// dropLogInterval spaces the warnings about events the buffer dropped: a
// full drop_oldest buffer drops on every append, and one line per drop
// would flood the log of a box nobody watches. The counter is exact.
const dropLogInterval = time.Minute

// logBufferDrops logs the drops not yet logged, at most once per
// dropLogInterval unless final (the buffer is closing).
func (t *Task) logBufferDrops(final bool) {
	t.bufLostMu.Lock()
	defer t.bufLostMu.Unlock()
	t.logBufferDropsLocked(final)
}

func (t *Task) logBufferDropsLocked(final bool) {
	n := t.bufLost - t.bufLogged
	if n == 0 {
		return
	}
	now := t.opts.Clock.Now()
	if !final && !t.bufLoggedAt.IsZero() && now.Sub(t.bufLoggedAt) < dropLogInterval {
		return
	}
	ev := t.log.Warn().Uint64(logx.Events, n).Uint64("total", t.bufLost)
	if !t.bufLoggedAt.IsZero() {
		ev = ev.Dur("since_last_report", now.Sub(t.bufLoggedAt))
	}
	ev.Msg("disk buffer dropped events (when_full = \"drop_oldest\", or corrupt data); counted in sluice_events_dropped_total, reported at most once a minute")
	t.bufLogged, t.bufLoggedAt = t.bufLost, now
}
