package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// job is one source batch (or the part of it one worker handles).
type job struct {
	msgs  []message.Message
	lane  string
	p     *pending
	fates []Fate
	// readAt is when the source returned the batch (end-to-end latency).
	readAt time.Time
	// at is the index in the worker's pending outputs of the job's first.
	at int
}

// worker processes jobs in arrival order and delivers their outputs.
type worker struct {
	t     *Task
	id    int
	in    chan *job
	proc  *Processor
	timer *time.Timer

	pending []message.Message // outputs waiting for the sink
	bytes   int               // payload bytes of pending
	owners  []*job            // owners[i] produced pending[i]
	jobs    []*job            // jobs whose outputs are pending
	results []delivery.Result
	dead    []delivery.Record
	buf     []byte
	tags    []buffer.Tag
	// appendCtx ends an append waiting for room in a full disk buffer as
	// soon as the task stops or halts, where the work context lets a
	// delivery under way finish within the shutdown deadline: a full
	// buffer frees no room then.
	appendCtx context.Context
	// deliver is the task's, with Interrupt set to the end of reading: a
	// stop (or a halt) cuts short the retries of a failing sink, whose
	// batches are then read again, instead of waiting out the shutdown
	// deadline for them.
	deliver delivery.Deliverer
}

func (t *Task) newWorker(id int) *worker {
	e := t.cfg.Engine
	proc := NewProcessor(t.cfg.Filter, t.trs, e.MaxEvent, t.cfg.Retry)
	proc.Clock = t.opts.Clock
	proc.obs = &t.obs
	proc.OnRetry = func(attempt int, wait time.Duration, err error) {
		t.stats.retries.Add(1)
		t.m.retries.Inc()
		t.log.Warn().Err(err).Int(logx.Attempt, attempt).Dur("wait", wait).Msg("transform failed; retrying")
	}
	return &worker{t: t, id: id, in: make(chan *job, max(1, e.MaxInFlight)), proc: proc}
}

func (w *worker) run(ctx context.Context) {
	maxWait := w.t.cfg.Engine.MaxWait
	var timerC <-chan time.Time
	for {
		var j *job
		var ok bool
		switch {
		case len(w.jobs) == 0:
			j, ok = <-w.in
		case maxWait == 0:
			// Flush as soon as no more input is waiting: low latency when
			// idle, full batches under load.
			select {
			case j, ok = <-w.in:
			default:
				w.flush(ctx)
				continue
			}
		default:
			if timerC == nil {
				w.timer = time.NewTimer(maxWait)
				timerC = w.timer.C
			}
			select {
			case j, ok = <-w.in:
			case <-timerC:
				timerC = nil
				w.flush(ctx)
				continue
			}
		}
		if !ok {
			w.flush(ctx)
			return
		}
		w.handle(ctx, j)
		if e := &w.t.cfg.Engine; len(w.jobs) > 0 && (len(w.pending) >= e.MaxEvents || e.MaxBytes > 0 && w.bytes >= e.MaxBytes) {
			if timerC != nil {
				w.timer.Stop()
				timerC = nil
			}
			w.flush(ctx)
		}
	}
}

// handle runs one job through the processor and queues its outputs.
func (w *worker) handle(ctx context.Context, j *job) {
	if w.t.halted.Load() {
		w.t.tracker.finish(j.lane, j.p, errStopping)
		return
	}
	for i := range j.msgs {
		j.msgs[i].Ref = int32(i)
	}
	j.fates = make([]Fate, len(j.msgs))
	outs, err := w.proc.Process(ctx, j.msgs, j.fates)
	if err != nil {
		// Only the end of the shutdown deadline stops processing.
		w.t.nacked.Add(1)
		w.t.tracker.finish(j.lane, j.p, err)
		return
	}
	j.at = len(w.pending)
	for i := range outs {
		w.pending = append(w.pending, outs[i])
		w.owners = append(w.owners, j)
		w.bytes += len(outs[i].Payload)
	}
	w.jobs = append(w.jobs, j)
}

// flush delivers pending outputs in batches of at most max_events and
// max_bytes, then settles every pending job.
func (w *worker) flush(ctx context.Context) {
	if len(w.jobs) == 0 {
		return
	}
	if w.t.buf != nil && w.t.cfg.Tolerance == ToleranceNone {
		w.failTooLarge()
	}
	k, n := w.blockedAt()
	if w.t.buf != nil {
		w.flushToBuffer(ctx, k, n)
		return
	}
	e := &w.t.cfg.Engine
	var stop error
	for start, end := 0, 0; start < n && stop == nil; start = end {
		end = start + cut(w.pending[start:n], e.MaxEvents, e.MaxBytes)
		chunk := w.pending[start:end]
		if cap(w.results) < len(chunk) {
			w.results = make([]delivery.Result, len(chunk))
		}
		res := w.results[:len(chunk)]
		began := time.Now()
		err := w.deliver.Deliver(ctx, chunk, res)
		w.t.m.write.Observe(time.Since(began).Seconds())
		if err != nil {
			stop = err
			break
		}
		var n, bytes int
		tapSink := w.t.obs.taps.active(w.t.obs.sink())
		for i := range chunk {
			if res[i].Err != nil {
				tapSink = false // offer only what was delivered
				f := &w.owners[start+i].fates[chunk[i].Ref]
				if !f.Failed() {
					*f = Fate{Stage: "sink", Err: res[i].Err, Attempts: res[i].Attempts}
				}
				continue
			}
			n++
			bytes += len(chunk[i].Payload)
		}
		w.t.stats.out.Add(uint64(n))
		w.t.stats.bytesOut.Add(uint64(bytes))
		w.t.m.out.Add(uint64(n))
		w.t.m.bytesOut.Add(uint64(bytes))
		w.t.countSink(len(chunk), n)
		if tapSink {
			w.t.obs.taps.offer(w.t.obs.sink(), chunk)
		}
	}
	if stop == nil && n > 0 {
		w.t.observeLatency(w.jobs[0].readAt)
	}
	if stop != nil {
		var s *delivery.Stop
		interrupted := errors.Is(stop, delivery.ErrInterrupted)
		if errors.As(stop, &s) && ctx.Err() == nil && !interrupted {
			w.t.stop(StartFailed, s.Err)
		}
		for _, j := range w.jobs {
			switch {
			case ctx.Err() != nil:
				w.t.nacked.Add(1)
			case interrupted:
				// Stopping while the sink failed: not delivered, not
				// acknowledged, read again; not a failure.
				w.t.givenBack.Add(1)
			}
			w.t.tracker.finish(j.lane, j.p, stop)
		}
	} else {
		for _, j := range w.jobs[:k] {
			w.settle(ctx, j, false)
		}
		w.block(ctx, k, false)
	}
	w.reset()
}

// blockedAt returns the index k of the first pending job holding an event
// that failed before the sink, when that blocks the task (errors.tolerance
// = "none"), and the number n of outputs of the jobs before it; else
// len(w.jobs) and len(w.pending). Job k and those after it are read
// again once the task resumes: none of their outputs may be written now,
// or the resumed task would write them a second time.
func (w *worker) blockedAt() (k, n int) {
	if w.t.cfg.Tolerance == ToleranceNone {
		for k, j := range w.jobs {
			for i := range j.fates {
				if j.fates[i].Failed() {
					return k, j.at
				}
			}
		}
	}
	return len(w.jobs), len(w.pending)
}

// block settles the jobs from k on, none of whose outputs was written: job
// k blocks the task on its failed event (settle dead-letters it, which
// under errors.tolerance = "none" blocks), and the jobs after it are not
// handled. Nothing of them is committed.
func (w *worker) block(ctx context.Context, k int, buffered bool) {
	if k >= len(w.jobs) {
		return
	}
	w.settle(ctx, w.jobs[k], buffered)
	for _, j := range w.jobs[k+1:] {
		w.t.tracker.finish(j.lane, j.p, errStopping)
	}
}

// appendChunks appends pending outputs in chunks small enough for the
// buffer's segments, cutting only between inputs: an input's outputs stay
// contiguous in the buffer, which is how the drain counts them. An input
// too large for the buffer on its own is dead-lettered. It returns how many
// of the first n outputs were handled (stored, or failed as too large):
// all n unless it fails.
func (w *worker) appendChunks(ctx context.Context, n int) (int, error) {
	t := w.t
	limit := t.bufChunk
	start, size := 0, 0
	for i := range w.pending[:n] {
		m := &w.pending[i]
		size += len(m.Payload) + len(m.Event) + len(m.Key) + 64
		if !w.tags[i].Last {
			continue
		}
		if i+1-start < t.cfg.Engine.MaxEvents && size < limit && i+1 < n {
			continue
		}
		err := t.buf.Append(ctx, w.pending[start:i+1], w.tags[start:i+1])
		if errors.Is(err, buffer.ErrTooLarge) {
			// Too large even alone: each input of the chunk on its own.
			var done int
			if done, err = w.appendOneByOne(ctx, start, i+1); err != nil {
				return done, err
			}
		}
		if err != nil {
			return start, err
		}
		start, size = i+1, 0
	}
	return n, nil
}

func (w *worker) appendOneByOne(ctx context.Context, from, to int) (int, error) {
	t := w.t
	g := from
	for i := from; i < to; i++ {
		if !w.tags[i].Last {
			continue
		}
		err := t.buf.Append(ctx, w.pending[g:i+1], w.tags[g:i+1])
		if errors.Is(err, buffer.ErrTooLarge) {
			w.tooLarge(g, err)
			err = nil
		}
		if err != nil {
			return g, err
		}
		g = i + 1
	}
	return to, nil
}

// tooLarge fails the input whose outputs start at pending[g]: they do not
// fit in the disk buffer.
func (w *worker) tooLarge(g int, err error) {
	f := &w.owners[g].fates[w.pending[g].Ref]
	*f = Fate{Stage: "sink", Err: component.EventPermanent(fmt.Errorf("event too large for the disk buffer (max_size %s): %w", component.ByteSize(w.t.cfg.Engine.Buffer.MaxSize), err)), Attempts: 1}
	f.Outputs = 0
}

// failTooLarge fails, before anything is appended, each input whose outputs
// the disk buffer would refuse as too large. Under errors.tolerance = "none"
// such an input blocks the task, and blockedAt must see it before the
// append: found during the append, its batch's other outputs (and those of
// the batches after it) would already be in the buffer, and written again
// when the resumed task reads the batch again.
func (w *worker) failTooLarge() {
	for g, i := 0, 0; i < len(w.pending); i++ {
		if i+1 < len(w.pending) && w.owners[i+1] == w.owners[i] && w.pending[i+1].Ref == w.pending[i].Ref {
			continue
		}
		if err := w.t.buf.Fits(w.pending[g : i+1]); err != nil {
			w.tooLarge(g, err)
		}
		g = i + 1
	}
}

// jobEnd returns the index in pending just past the outputs of w.jobs[i].
func (w *worker) jobEnd(i int) int {
	if i+1 < len(w.jobs) {
		return w.jobs[i+1].at
	}
	return len(w.pending)
}

// reset empties the worker's pending state after a flush.
func (w *worker) reset() {
	clear(w.pending)
	clear(w.owners)
	clear(w.jobs)
	w.pending, w.owners, w.jobs = w.pending[:0], w.owners[:0], w.jobs[:0]
	w.bytes = 0
	w.proc.Reset()
}

// flushToBuffer appends the outputs of the first k pending jobs (the first
// n outputs: see blockedAt) to the task's disk buffer and acks those jobs
// once the append is durable: from there the buffer's drain delivers them,
// and counts each input delivered or dead-lettered.
func (w *worker) flushToBuffer(ctx context.Context, k, n int) {
	t := w.t
	tags := w.tags[:0]
	for i := range w.pending[:n] {
		last := i == n-1 || w.owners[i+1] != w.owners[i] || w.pending[i+1].Ref != w.pending[i].Ref
		tags = append(tags, buffer.Tag{Group: uint32(w.pending[i].Ref), Last: last})
	}
	w.tags = tags
	appendCtx := w.appendCtx
	if appendCtx == nil {
		appendCtx = ctx
	}
	stored, err := w.appendChunks(appendCtx, n)
	// Appends are where a full drop_oldest buffer drops: count it now,
	// not when the drain (stuck on a sink that is down) next gets round.
	t.countBufferDrops()
	if err != nil {
		// The jobs whose outputs all went into the buffer before the
		// failure are handled: the drain delivers them. Nacked, they
		// were read again and written twice (a stop while the buffer
		// was full sent again every batch of the flush under way).
		kept := 0
		for kept < k && w.jobEnd(kept) <= stored {
			kept++
		}
		rest := w.jobs[kept:]
		switch {
		case ctx.Err() != nil:
			t.nacked.Add(int64(len(rest)))
		case appendCtx.Err() != nil && errors.Is(err, context.Canceled):
			// Stopping (or halted) while the buffer was full: not
			// acknowledged, read again at the next start (what the
			// append under way had stored of its batch, too).
			t.givenBack.Add(int64(len(rest)))
		default:
			t.block(blockedByBuffer, fmt.Errorf("disk buffer: %w", err))
		}
		for _, j := range w.jobs[:kept] {
			w.settle(ctx, j, true)
		}
		for _, j := range rest {
			t.tracker.finish(j.lane, j.p, err)
		}
	} else {
		// With a disk buffer, a batch's latency ends at the durable append:
		// the buffer, not the sink, acknowledges it.
		if n > 0 {
			t.observeLatency(w.jobs[0].readAt)
		}
		for _, j := range w.jobs[:k] {
			w.settle(ctx, j, true)
		}
		w.block(ctx, k, true)
	}
	w.reset()
}

// settle counts how each event of j left the task, dead-letters the failed
// ones and acks j. With buffered set, events with outputs went to the disk
// buffer: the drain counts them once it delivers them.
func (w *worker) settle(ctx context.Context, j *job, buffered bool) {
	t := w.t
	if t.cycling && t.cfg.Tolerance != ToleranceNone {
		for i := range j.fates {
			if f := &j.fates[i]; f.Failed() && abortsCycle(f.Stage, f.Err) {
				// In a transaction the failed write may have doomed it: the
				// whole cycle aborts and is read again, which neither loses
				// the event (as dead-lettering through the same doomed
				// transaction would) nor duplicates it.
				t.tracker.finish(j.lane, j.p, fmt.Errorf("%w: event %s: %w", errCycleAborted, j.msgs[i].Pos, f.Err))
				return
			}
		}
	}
	var delivered, filtered uint64
	w.dead = w.dead[:0]
	now := time.Now()
	for i := range j.fates {
		f := &j.fates[i]
		switch {
		case f.Failed():
			m := &j.msgs[i]
			w.dead = append(w.dead, delivery.Record{Event: m.Event, Task: t.cfg.Name, Stage: f.Stage, Err: f.Err, Attempts: f.Attempts, Pos: m.Pos, Time: now})
		case f.Outputs > 0:
			if !buffered {
				delivered++
			}
		default:
			filtered++
		}
	}
	if len(w.dead) > 0 {
		if err := t.deadLetter(ctx, w.dead, &w.buf); err != nil {
			if ctx.Err() != nil {
				t.nacked.Add(1)
			}
			// Not handled: the batch is read again and counted then.
			t.tracker.finish(j.lane, j.p, err)
			return
		}
	}
	if len(w.dead) > 0 && t.cfg.Tolerance != ToleranceNone {
		if t.dlq == nil {
			j.p.counted.dropped.Add(uint64(len(w.dead)))
		} else {
			j.p.counted.deadLettered.Add(uint64(len(w.dead)))
		}
	}
	t.stats.delivered.Add(delivered)
	t.stats.filtered.Add(filtered)
	t.m.filtered.Add(filtered)
	j.p.counted.delivered.Add(delivered)
	j.p.counted.filtered.Add(filtered)
	t.tracker.finish(j.lane, j.p, nil)
}

// deadLetter sends failed events to the dead-letter queue, or drops them
// (counted and logged) when the task has none. Under tolerance = "none" it
// blocks the task instead and returns the error: the batch is not handled.
// scratch holds the encoded records; the caller owns it.
func (t *Task) deadLetter(ctx context.Context, recs []delivery.Record, scratch *[]byte) error {
	for i := range recs {
		r := &recs[i]
		t.m.failed.WithLabelValues(stageLabel(r.Stage), errorTypeOf(r.Stage, r.Err)).Inc()
		if r.Err != nil {
			t.obs.addError(r.Stage, r.Err.Error())
		}
		t.log.Warn().Str(logx.Stage, r.Stage).Str(logx.ErrorType, r.Class()).Str(logx.Position, r.Pos.String()).
			Int(logx.Attempt, r.Attempts).Err(r.Err).Msg("event failed")
	}
	if t.cfg.Tolerance == ToleranceNone {
		r := &recs[0]
		err := errors.New(r.Stage + " failed at " + r.Pos.String() + ": " + r.Err.Error())
		t.block(blockedByTolerance, err)
		return err
	}
	if t.dlq == nil {
		t.stats.dropped.Add(uint64(len(recs)))
		t.m.dropped.Add(uint64(len(recs)))
		return nil
	}
	msgs := make([]message.Message, len(recs))
	buf := (*scratch)[:0]
	for i := range recs {
		r := &recs[i]
		if t.dlqRaw {
			msgs[i] = message.Message{Payload: r.Event, Event: r.Event, Headers: r.Headers(), Pos: r.Pos, Time: r.Time}
			continue
		}
		start := len(buf)
		buf = r.AppendJSON(buf)
		msgs[i] = message.Message{Event: r.Event, Pos: r.Pos, Time: r.Time}
		msgs[i].Payload = buf[start:len(buf):len(buf)]
	}
	*scratch = buf
	// Payload slices of earlier records stay valid if buf grew: append
	// copies into a new array and leaves the old one to the slices.
	res := make([]delivery.Result, len(msgs))
	e := &t.cfg.Engine
	for start, end := 0, 0; start < len(msgs); start = end {
		end = start + cut(msgs[start:], e.DeadLetterMaxEvents, e.DeadLetterMaxBytes)
		if err := t.dlqDeliver.Deliver(ctx, msgs[start:end], res[start:end]); err != nil {
			if t.cycling && abortsCycle("sink", err) {
				return fmt.Errorf("%w: dead-letter queue: %w", errCycleAborted, err)
			}
			if ctx.Err() == nil {
				t.block(blockedByDLQ, errors.New("dead-letter queue unavailable: "+err.Error()))
			}
			return err
		}
	}
	for i := range res {
		if res[i].Err != nil && t.cycling && abortsCycle("sink", res[i].Err) {
			return fmt.Errorf("%w: dead-letter queue: %w", errCycleAborted, res[i].Err)
		}
		if res[i].Err != nil {
			// The dead-letter queue refused the record: nothing is left to
			// keep it, so the task stops rather than lose it.
			err := errors.New("dead-letter queue rejected a record: " + res[i].Err.Error())
			t.block(blockedByDLQ, err)
			return err
		}
	}
	t.stats.deadLettered.Add(uint64(len(recs)))
	t.m.dlq.Add(uint64(len(recs)))
	return nil
}

// errCycleAborted nacks a batch of an exactly-once cycle whose delivery
// failed in a way retries did not fix: the cycle aborts and its records are
// read again, without stopping the task.
var errCycleAborted = errors.New("transaction aborted; its records will be read again")

// abortsCycle reports whether a failure at stage aborts an exactly-once
// cycle instead of going to the dead-letter queue: a sink (or dead-letter)
// write that failed retryably, whose records may sit in the transaction.
func abortsCycle(stage string, err error) bool {
	if stage != "sink" {
		return false
	}
	var s *delivery.Stop
	if errors.As(err, &s) {
		// The end of the shutdown deadline or a task-permanent failure:
		// the task stops either way.
		return false
	}
	return component.ClassOf(err) == component.ClassRetryable
}

func stageLabel(stage string) string {
	if len(stage) > 9 && stage[:9] == "transform" {
		return "transform"
	}
	return stage
}

func errorTypeOf(stage string, err error) string {
	if stage == "decode" {
		return "decode"
	}
	if errors.Is(err, delivery.ErrGaveUp) {
		return "retries_exhausted"
	}
	return component.ClassOf(err).String()
}

// countSink counts a sink write of n outputs of which ok were delivered.
func (t *Task) countSink(n, ok int) {
	c := &t.obs.counts[t.obs.sink()]
	c.in.Add(uint64(n))
	c.out.Add(uint64(ok))
	if n > ok {
		c.failed.Add(uint64(n - ok))
	}
}

// observeLatency records the end-to-end latency of outputs of a batch read
// at readAt that were just delivered.
func (t *Task) observeLatency(readAt time.Time) {
	if readAt.IsZero() {
		return
	}
	d := time.Since(readAt)
	t.obs.latencyNanos.Store(int64(d))
	t.m.latency.Observe(d.Seconds())
}
