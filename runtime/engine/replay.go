package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// ReplayStats says how the events of a Replay left the task.
type ReplayStats struct {
	Delivered    int `json:"delivered"`
	Filtered     int `json:"filtered"`
	DeadLettered int `json:"dead_lettered"` // failed again: back in the dead-letter queue
	Dropped      int `json:"dropped"`       // failed again, and the task has no dead-letter queue
}

// Replay runs events (source events, as a dead-letter record keeps them)
// through the task's filter, transforms and sink, next to what the task
// reads: an operator's replay of dead letters. They count in the task's
// counters as events read. An event that fails again goes to the
// dead-letter queue again. It needs a running (or paused) task, whose
// components are open; the disk buffer, when the task has one, is skipped:
// outputs go to the sink directly. It returns an error when the sink
// could not take the outputs after the retries (nothing was counted
// delivered then).
func (t *Task) Replay(ctx context.Context, events [][]byte) (ReplayStats, error) {
	var rs ReplayStats
	if s := t.State(); s != Running && s != Paused {
		return rs, fmt.Errorf("%w: the task is %s; dead letters replay through a running or paused task", ErrCannotSeek, s)
	}
	if t.sinkPending.Load() {
		// Running on its disk buffer, the sink not reached since the
		// start: the outputs would go to a sink not open.
		return rs, fmt.Errorf("%w: the task's sink could not be opened yet (its events wait in the disk buffer); replay once it is", ErrCannotSeek)
	}
	e := t.cfg.Engine
	proc := NewProcessor(t.cfg.Filter, t.trs, e.MaxEvent, t.cfg.Retry)
	proc.Clock = t.opts.Clock
	proc.obs = &t.obs
	now := time.Now()
	msgs := make([]message.Message, len(events))
	var bytes int
	for i, ev := range events {
		msgs[i] = message.Message{Payload: ev, Event: ev, Ref: int32(i), Time: now,
			Pos: message.Position{Stream: "dead-letter replay", Offset: int64(i)}}
		bytes += len(ev)
	}
	t.stats.in.Add(uint64(len(msgs)))
	t.stats.bytesIn.Add(uint64(bytes))
	t.m.in.Add(uint64(len(msgs)))
	t.obs.counts[stageSource].in.Add(uint64(len(msgs)))
	fates := make([]Fate, len(msgs))
	outs, err := proc.Process(ctx, msgs, fates)
	if err != nil {
		return rs, err
	}
	defer proc.Reset()
	res := make([]delivery.Result, len(outs))
	var outBytes int
	for start, end := 0, 0; start < len(outs); start = end {
		end = start + cut(outs[start:], e.MaxEvents, e.MaxBytes)
		if err := t.deliver.Deliver(ctx, outs[start:end], res[start:end]); err != nil {
			return rs, fmt.Errorf("delivering the replayed events: %w", err)
		}
	}
	n := 0
	for i := range outs {
		if res[i].Err != nil {
			if f := &fates[outs[i].Ref]; !f.Failed() {
				*f = Fate{Stage: "sink", Err: res[i].Err, Attempts: res[i].Attempts}
			}
			continue
		}
		n++
		outBytes += len(outs[i].Payload)
	}
	t.stats.out.Add(uint64(n))
	t.stats.bytesOut.Add(uint64(outBytes))
	t.m.out.Add(uint64(n))
	t.m.bytesOut.Add(uint64(outBytes))
	t.countSink(len(outs), n)
	var dead []delivery.Record
	for i := range fates {
		f := &fates[i]
		switch {
		case f.Failed():
			dead = append(dead, delivery.Record{Event: msgs[i].Event, Task: t.cfg.Name, Stage: f.Stage, Err: f.Err, Attempts: f.Attempts, Pos: msgs[i].Pos, Time: now})
		case f.Outputs > 0:
			rs.Delivered++
		default:
			rs.Filtered++
		}
	}
	t.stats.delivered.Add(uint64(rs.Delivered))
	t.stats.filtered.Add(uint64(rs.Filtered))
	t.m.filtered.Add(uint64(rs.Filtered))
	if len(dead) > 0 && t.cfg.Tolerance == ToleranceNone {
		// Dead-lettering would block the running task for an old event:
		// the records stay where they are instead.
		return rs, fmt.Errorf("%d of the events failed again (first: %s: %v); under errors.tolerance = \"none\" they stay in the dead-letter queue", len(dead), dead[0].Stage, dead[0].Err)
	}
	if len(dead) > 0 {
		before := t.stats.dropped.Load()
		var scratch []byte
		if err := t.deadLetter(ctx, dead, &scratch); err != nil {
			return rs, err
		}
		if t.stats.dropped.Load() > before {
			rs.Dropped = len(dead)
		} else {
			rs.DeadLettered = len(dead)
		}
	}
	return rs, nil
}
