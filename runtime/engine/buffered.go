package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// the input being counted when its outputs straddle two reads
	groupFailed bool
	groupRec    delivery.Record
	bufRecords  prometheus.Gauge
	bufBytes    prometheus.Gauge
}

func (t *Task) openBuffer() error {
	if t.cfg.Engine.Buffer == nil {
		return nil
	}
	b, err := buffer.Open(*t.cfg.Engine.Buffer)
	if err != nil {
		return fmt.Errorf("disk buffer %s: %w", t.cfg.Engine.Buffer.Dir, err)
	}
	t.buf = b
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

// startDrain runs the drain until stopDrain.
func (t *Task) startDrain() {
	if t.buf == nil {
		return
	}
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
	lbl := prometheus.Labels{"task": t.cfg.Name}
	d := &drainer{t: t,
		bufRecords: t.opts.Metrics.Gauge("buffer_records", "Records in the task's disk buffer, not yet delivered.", "task").With(lbl),
		bufBytes:   t.opts.Metrics.Gauge("buffer_bytes", "Size of the task's disk buffer files.", "task").With(lbl),
	}
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
	defer t.countBufferDrops() // what was dropped while the last batch was under way
	for {
		t.countBufferDrops()
		if readCtx.Err() != nil {
			return
		}
		b, err := t.buf.Read(readCtx, max)
		if err != nil {
			if readCtx.Err() == nil && !errors.Is(err, buffer.ErrClosed) {
				t.stop(Blocked, fmt.Errorf("reading the disk buffer: %w", err))
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
		var out, bytes, delivered uint64
		d.dead = d.dead[:0]
		now := time.Now()
		for i := range b.Msgs {
			m := &b.Msgs[i]
			if r := res[i]; r.Err != nil {
				if !d.groupFailed {
					d.groupFailed = true
					d.groupRec = delivery.Record{Event: m.Event, Task: t.cfg.Name, Stage: "sink", Err: r.Err, Attempts: r.Attempts, Pos: m.Pos, Time: now}
				}
			} else {
				out++
				bytes += uint64(len(m.Payload))
			}
			if b.Tags[i].Last {
				if d.groupFailed {
					d.dead = append(d.dead, d.groupRec)
				} else {
					delivered++
				}
				d.groupFailed = false
			}
		}
		t.stats.out.Add(out)
		t.stats.bytesOut.Add(bytes)
		t.m.out.Add(float64(out))
		t.m.bytesOut.Add(float64(bytes))
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
			t.stop(Blocked, fmt.Errorf("committing the disk buffer: %w", err))
			return
		}
		st := t.buf.Stats()
		d.bufRecords.Set(float64(st.Records))
		d.bufBytes.Set(float64(st.Bytes))
	}
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
		t.m.dropped.Add(float64(n - t.bufLost))
		t.log.Warn().Uint64(logx.Events, n-t.bufLost).Msg("disk buffer dropped events (when_full = \"drop_oldest\", or corrupt data)")
		t.bufLost = n
	}
}
