package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

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
}

// worker processes jobs in arrival order and delivers their outputs.
type worker struct {
	t     *Task
	id    int
	in    chan *job
	proc  *Processor
	timer *time.Timer

	pending []message.Message // outputs waiting for the sink
	owners  []*job            // owners[i] produced pending[i]
	jobs    []*job            // jobs whose outputs are pending
	results []delivery.Result
	dead    []delivery.Record
	buf     []byte
}

func (t *Task) newWorker(id int) *worker {
	e := t.cfg.Engine
	proc := NewProcessor(t.cfg.Filter, t.trs, e.MaxEvent, PolicyOf(t.cfg.Retry))
	proc.Clock = t.opts.Clock
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
		if len(w.jobs) > 0 && len(w.pending) >= w.t.cfg.Engine.MaxEvents {
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
	for i := range outs {
		w.pending = append(w.pending, outs[i])
		w.owners = append(w.owners, j)
	}
	w.jobs = append(w.jobs, j)
}

// flush delivers pending outputs in batches of at most max_events, then
// settles every pending job.
func (w *worker) flush(ctx context.Context) {
	if len(w.jobs) == 0 {
		return
	}
	max := w.t.cfg.Engine.MaxEvents
	var stop error
	for start := 0; start < len(w.pending) && stop == nil; start += max {
		end := min(start+max, len(w.pending))
		chunk := w.pending[start:end]
		if cap(w.results) < len(chunk) {
			w.results = make([]delivery.Result, len(chunk))
		}
		res := w.results[:len(chunk)]
		began := time.Now()
		err := w.t.deliver.Deliver(ctx, chunk, res)
		w.t.m.write.Observe(time.Since(began).Seconds())
		if err != nil {
			stop = err
			break
		}
		var n, bytes int
		for i := range chunk {
			if res[i].Err != nil {
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
		w.t.m.out.Add(float64(n))
	}
	if stop != nil {
		var s *delivery.Stop
		if errors.As(stop, &s) && ctx.Err() == nil {
			w.t.stop(StartFailed, s.Err)
		}
		for _, j := range w.jobs {
			if ctx.Err() != nil {
				w.t.nacked.Add(1)
			}
			w.t.tracker.finish(j.lane, j.p, stop)
		}
	} else {
		for _, j := range w.jobs {
			w.settle(ctx, j)
		}
	}
	clear(w.pending)
	clear(w.owners)
	clear(w.jobs)
	w.pending, w.owners, w.jobs = w.pending[:0], w.owners[:0], w.jobs[:0]
	w.proc.Reset()
}

// settle counts how each event of j left the task, dead-letters the failed
// ones and acks j.
func (w *worker) settle(ctx context.Context, j *job) {
	t := w.t
	if t.cycling && t.cfg.Tolerance != "none" {
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
			t.m.failed.WithLabelValues(stageLabel(f.Stage), errorType(f)).Inc()
		case f.Outputs > 0:
			delivered++
		default:
			filtered++
		}
	}
	t.stats.delivered.Add(delivered)
	t.stats.filtered.Add(filtered)
	t.m.filtered.Add(float64(filtered))
	if len(w.dead) > 0 {
		if err := w.deadLetter(ctx, w.dead); err != nil {
			if ctx.Err() != nil {
				t.nacked.Add(1)
			}
			t.tracker.finish(j.lane, j.p, err)
			return
		}
	}
	t.tracker.finish(j.lane, j.p, nil)
}

// deadLetter sends failed events to the dead-letter queue, or drops them
// (counted and logged) when the task has none. Under tolerance = "none" it
// blocks the task instead and returns the error: the batch is not handled.
func (w *worker) deadLetter(ctx context.Context, recs []delivery.Record) error {
	t := w.t
	for i := range recs {
		r := &recs[i]
		t.log.Warn().Str(logx.Stage, r.Stage).Str(logx.ErrorType, r.Class()).Str(logx.Position, r.Pos.String()).
			Int(logx.Attempt, r.Attempts).Err(r.Err).Msg("event failed")
	}
	if t.cfg.Tolerance == "none" {
		r := &recs[0]
		err := errors.New(r.Stage + " failed at " + r.Pos.String() + ": " + r.Err.Error())
		t.stop(Blocked, err)
		return err
	}
	if t.dlq == nil {
		t.stats.dropped.Add(uint64(len(recs)))
		t.m.dropped.Add(float64(len(recs)))
		return nil
	}
	msgs := make([]message.Message, len(recs))
	w.buf = w.buf[:0]
	for i := range recs {
		r := &recs[i]
		if t.dlqRaw {
			msgs[i] = message.Message{Payload: r.Event, Event: r.Event, Headers: r.Headers(), Pos: r.Pos, Time: r.Time}
			continue
		}
		start := len(w.buf)
		w.buf = r.AppendJSON(w.buf)
		msgs[i] = message.Message{Event: r.Event, Pos: r.Pos, Time: r.Time}
		msgs[i].Payload = w.buf[start:len(w.buf):len(w.buf)]
	}
	// Payload slices of earlier records stay valid if w.buf grew: append
	// copies into a new array and leaves the old one to the slices.
	res := make([]delivery.Result, len(msgs))
	if err := t.dlqDeliver.Deliver(ctx, msgs, res); err != nil {
		if t.cycling && abortsCycle("sink", err) {
			return fmt.Errorf("%w: dead-letter queue: %w", errCycleAborted, err)
		}
		if ctx.Err() == nil {
			t.stop(Blocked, errors.New("dead-letter queue unavailable: "+err.Error()))
		}
		return err
	}
	for i := range res {
		if res[i].Err != nil && t.cycling && abortsCycle("sink", res[i].Err) {
			return fmt.Errorf("%w: dead-letter queue: %w", errCycleAborted, res[i].Err)
		}
		if res[i].Err != nil {
			// The dead-letter queue refused the record: nothing is left to
			// keep it, so the task stops rather than lose it.
			err := errors.New("dead-letter queue rejected a record: " + res[i].Err.Error())
			t.stop(Blocked, err)
			return err
		}
	}
	t.stats.deadLettered.Add(uint64(len(recs)))
	t.m.dlq.Add(float64(len(recs)))
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

func errorType(f *Fate) string {
	if f.Stage == "decode" {
		return "decode"
	}
	if errors.Is(f.Err, delivery.ErrGaveUp) {
		return "retries_exhausted"
	}
	return component.ClassOf(f.Err).String()
}
