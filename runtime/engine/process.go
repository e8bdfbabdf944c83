package engine

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// Fate is what happened to one input event in the processor.
type Fate struct {
	// Outputs counts the outputs the event produced.
	Outputs int
	// Stage and Err are set when the event failed: "decode", "filter",
	// "transform[N]" or "sink".
	Stage string
	Err   error
	// Attempts counts tries of the failing step.
	Attempts int
}

// Failed reports whether the event failed.
func (f *Fate) Failed() bool { return f.Err != nil }

// Processor runs events through the filter and the transform chain. It owns
// scratch buffers and is not safe for concurrent use: each worker has one.
type Processor struct {
	Filter     Filter
	Transforms []component.Transform
	MaxEvent   int
	// Retry applies to transform failures marked retryable (a WASM module's
	// retry outcome).
	Retry delivery.Policy
	Clock delivery.Clock
	// OnRetry, when set, is told about each retry before its wait (the
	// task logs and counts it).
	OnRetry func(attempt int, wait time.Duration, err error)

	outs      []component.Output
	survivors []message.Message
	stages    []string
	// obs, when set (a task's workers), counts each stage and feeds taps.
	obs *observer
}

// NewProcessor returns a processor for a task's filter and transforms.
func NewProcessor(filter Filter, transforms []component.Transform, maxEvent int, retry delivery.Policy) *Processor {
	p := &Processor{Filter: filter, Transforms: transforms, MaxEvent: maxEvent, Retry: retry, Clock: delivery.SystemClock{}}
	p.outs = make([]component.Output, len(transforms))
	p.stages = make([]string, len(transforms))
	for i := range transforms {
		p.stages[i] = "transform[" + strconv.Itoa(i) + "]"
	}
	return p
}

// Process runs msgs through the filter and the chain. Each msgs[i].Ref must
// be i; fates must have len(msgs) entries and are filled in. It returns the
// outputs of the last stage; their payloads stay valid until Reset.
func (p *Processor) Process(ctx context.Context, msgs []message.Message, fates []Fate) ([]message.Message, error) {
	surv := p.survivors[:0]
	for i := range msgs {
		m := &msgs[i]
		fates[i] = Fate{}
		switch {
		case m.Err != nil:
			fates[i] = Fate{Stage: "decode", Err: m.Err, Attempts: 1}
			continue
		case p.MaxEvent > 0 && len(m.Payload) > p.MaxEvent:
			fates[i] = Fate{Stage: "decode", Err: fmt.Errorf("event too large: %d bytes, the limit is %d (raise max_event_size)", len(m.Payload), p.MaxEvent), Attempts: 1}
			continue
		}
		if p.Filter != nil {
			ok, err := p.Filter.Match(ctx, m.Payload)
			if err != nil {
				if ctx.Err() != nil {
					// Stopped, not failed: the event was not handled.
					return nil, ctx.Err()
				}
				fates[i] = Fate{Stage: "filter", Err: err, Attempts: 1}
				continue
			}
			if !ok {
				continue
			}
		}
		surv = append(surv, *m)
	}
	p.survivors = surv
	if p.obs != nil {
		p.countFront(msgs, fates, len(surv))
	}
	in := surv
	for k, tr := range p.Transforms {
		o := &p.outs[k]
		// Messages and Failures are per batch; Buf keeps earlier batches'
		// payloads alive until Reset, after the sink has written them.
		clear(o.Messages)
		o.Messages, o.Failures = o.Messages[:0], o.Failures[:0]
		if err := p.apply(ctx, k, tr, in, o, fates); err != nil {
			return nil, err
		}
		if p.obs != nil {
			p.countTransform(k, in, o.Messages, fates)
		}
		in = o.Messages
	}
	// An event that failed anywhere in the chain has no output delivered,
	// even one a transform emitted before a later one failed it.
	out := in
	if len(p.Transforms) > 0 {
		n := 0
		for i := range in {
			if !fates[in[i].Ref].Failed() {
				in[n] = in[i]
				n++
			}
		}
		out = in[:n]
	}
	for i := range out {
		fates[out[i].Ref].Outputs++
	}
	return out, nil
}

// countFront counts the source's decoded events and the filter's passes
// and failures, and offers the survivors to the filter's taps.
func (p *Processor) countFront(msgs []message.Message, fates []Fate, passed int) {
	var decodeFailed, filterFailed uint64
	for i := range fates {
		switch fates[i].Stage {
		case "decode":
			decodeFailed++
		case "filter":
			filterFailed++
		}
	}
	src, flt := &p.obs.counts[stageSource], &p.obs.counts[stageFilter]
	src.out.Add(uint64(len(msgs)) - decodeFailed)
	src.failed.Add(decodeFailed)
	flt.in.Add(uint64(len(msgs)) - decodeFailed)
	flt.out.Add(uint64(passed))
	flt.failed.Add(filterFailed)
	if p.obs.taps.active(stageFilter) {
		p.obs.taps.offer(stageFilter, p.survivors)
	}
}

// countTransform counts transform k's inputs, outputs and failures, and
// offers its outputs to its taps.
func (p *Processor) countTransform(k int, in, out []message.Message, fates []Fate) {
	var failed uint64
	for i := range in {
		if fates[in[i].Ref].Stage == p.stages[k] {
			failed++
		}
	}
	c := &p.obs.counts[2+k]
	c.in.Add(uint64(len(in)))
	c.out.Add(uint64(len(out)))
	c.failed.Add(failed)
	if p.obs.taps.active(2 + k) {
		p.obs.taps.offer(2+k, out)
	}
}

// apply runs one transform; when the transform fails the whole batch, the
// batch is split until the failing events are isolated (isolate). Retryable
// failures, per event or of an isolated event's whole call, are retried on
// the task's policy.
func (p *Processor) apply(ctx context.Context, k int, tr component.Transform, in []message.Message, o *component.Output, fates []Fate) error {
	if len(in) == 0 {
		return nil
	}
	start := len(o.Messages)
	fstart := len(o.Failures)
	// Each output carries the index of its input (copied with the message):
	// a retry's outputs go back to their place by it.
	for i := range in {
		in[i].Seq = int32(i)
	}
	if err := p.isolate(ctx, tr, in, o); err != nil {
		return err
	}
	var again []component.Failure
	for _, f := range o.Failures[fstart:] {
		if component.ClassOf(f.Err) == component.ClassRetryable && p.Retry.Attempts > 0 {
			again = append(again, f)
			continue
		}
		p.fail(fates, f.Ref, Fate{Stage: p.stages[k], Err: f.Err, Attempts: 1})
	}
	// An event that failed for good (here, or at an earlier stage through
	// another of its outputs) is not retried for the rest.
	again = slices.DeleteFunc(again, func(f component.Failure) bool { return fates[f.Ref].Failed() })
	if len(again) > 0 {
		if err := p.retry(ctx, k, tr, in, again, start, o, fates); err != nil {
			return err
		}
		// The retried events' outputs were appended after the others':
		// put them back in input order, which is the lane's (docs/delivery.md:
		// order is kept per source partition), and, within an event split
		// in several messages by an earlier transform, in the order of
		// those messages (by the event alone, a retried first message's
		// outputs went after the second's).
		slices.SortStableFunc(o.Messages[start:], func(a, b message.Message) int {
			return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Seq, b.Seq))
		})
	}
	return nil
}

// fail records how event ref failed, unless it already failed: the first
// failure is the one its dead-letter record tells.
func (p *Processor) fail(fates []Fate, ref int32, f Fate) {
	if !fates[ref].Failed() {
		fates[ref] = f
	}
}

// dropOutputs removes from o the outputs from index from on of the events
// in refs: a retry of every message of those events makes them again.
func dropOutputs(o *component.Output, from int, refs map[int32]error) {
	n := from
	for i := from; i < len(o.Messages); i++ {
		if _, ok := refs[o.Messages[i].Ref]; !ok {
			o.Messages[n] = o.Messages[i]
			n++
		}
	}
	clear(o.Messages[n:])
	o.Messages = o.Messages[:n]
}

// isolate runs tr on in. When tr fails the whole call, the call is split
// until the events it fails for are alone, and each of those gets the
// call's error as its failure: a retryable one (a WASM module's instance
// that could not start) is retried on the policy like a per-event failure,
// not dead-lettered at its first try. Only the end of ctx is returned.
func (p *Processor) isolate(ctx context.Context, tr component.Transform, in []message.Message, o *component.Output) error {
	start, fstart := len(o.Messages), len(o.Failures)
	err := tr.Apply(ctx, in, o)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	clear(o.Messages[start:])
	o.Messages, o.Failures = o.Messages[:start], o.Failures[:fstart]
	if len(in) == 1 {
		o.Fail(&in[0], err)
		return nil
	}
	h := len(in) / 2
	if err := p.isolate(ctx, tr, in[:h], o); err != nil {
		return err
	}
	return p.isolate(ctx, tr, in[h:], o)
}

// retry runs the transform again on the events that asked for it, together:
// one call per attempt for all of them (a remote function answering 503
// for a whole batch is retried as one batch, not event by event, each
// with its own waits). Events drop out as they succeed or fail for good.
// The outputs of in start at index start of o.Messages.
func (p *Processor) retry(ctx context.Context, k int, tr component.Transform, in []message.Message, fails []component.Failure, start int, o *component.Output, fates []Fate) error {
	pending, whole := failedMessages(in, fails)
	dropOutputs(o, start, whole)
	lastErr := make(map[int32]error, len(fails))
	for _, ev := range pending {
		lastErr[ev.Ref] = nil
	}
	for _, f := range fails {
		if _, ok := lastErr[f.Ref]; !ok {
			// Not an input of this call (a transform naming a Ref it was
			// not given): nothing to run again.
			p.fail(fates, f.Ref, Fate{Stage: p.stages[k], Err: f.Err, Attempts: 1})
			continue
		}
		lastErr[f.Ref] = f.Err
	}
	first := p.Clock.Now()
	tries := 1 // of the pending events, so far
	for attempt := 1; attempt <= p.Retry.Attempts && len(pending) > 0; attempt++ {
		w := p.Retry.Interval(attempt, rand.Float64)
		// A server's Retry-After (a remote function answering 429 or 503)
		// wins when it asks for longer, as for a sink (docs/delivery.md).
		for _, ev := range pending {
			w = max(w, component.RetryAfter(lastErr[ev.Ref]))
		}
		if p.Retry.MaxAge > 0 {
			// Never past max_age: the last try comes when it is reached.
			left := first.Add(p.Retry.MaxAge).Sub(p.Clock.Now())
			if left <= 0 {
				break
			}
			w = min(w, left)
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, w, fmt.Errorf("%s, %d events: %w", p.stages[k], len(pending), lastErr[pending[0].Ref]))
		}
		if err := p.Clock.Sleep(ctx, w); err != nil {
			return err
		}
		mark, fmark := len(o.Messages), len(o.Failures)
		tries = attempt + 1
		// A call failed as a whole is split as on the first try, so that
		// an event failing for good does not fail the others with it.
		if err := p.isolate(ctx, tr, pending, o); err != nil {
			return err
		}
		var again []component.Failure
		for _, f := range o.Failures[fmark:] {
			given := slices.ContainsFunc(pending, func(m message.Message) bool { return m.Ref == f.Ref })
			if !given || component.ClassOf(f.Err) != component.ClassRetryable {
				// Failed for good, or a Ref this call was not given
				// (nothing to run again): as on the first try.
				p.fail(fates, f.Ref, Fate{Stage: p.stages[k], Err: f.Err, Attempts: attempt + 1})
				continue
			}
			again = append(again, f)
		}
		again = slices.DeleteFunc(again, func(f component.Failure) bool { return fates[f.Ref].Failed() })
		for _, f := range again {
			lastErr[f.Ref] = f.Err
		}
		var w2 map[int32]error
		pending, w2 = failedMessages(pending, again)
		dropOutputs(o, mark, w2)
		clear(o.Failures[fmark:])
		o.Failures = o.Failures[:fmark]
	}
	for _, ev := range pending {
		// max_age may have stopped the retries before the policy's
		// attempts ran out: the record counts the tries made.
		p.fail(fates, ev.Ref, Fate{Stage: p.stages[k], Err: fmt.Errorf("%w after %d attempts: %w", delivery.ErrGaveUp, tries, lastErr[ev.Ref]), Attempts: tries})
	}
	return nil
}

// failedMessages returns the messages of in that fails name, in the order
// of in. A failure names its message (Failure.In); one that names none of
// in names every message of its input event, after a fan-out possibly
// several: whole holds those events, whose outputs a retry makes again.
func failedMessages(in []message.Message, fails []component.Failure) (failed []message.Message, whole map[int32]error) {
	if len(fails) == 0 {
		return nil, nil
	}
	at := make(map[*message.Message]int, len(in))
	for i := range in {
		at[&in[i]] = i
	}
	take := make([]bool, len(in))
	for _, f := range fails {
		if i, ok := at[f.In]; ok && in[i].Ref == f.Ref {
			take[i] = true
			continue
		}
		if whole == nil {
			whole = make(map[int32]error)
		}
		whole[f.Ref] = f.Err
	}
	for i := range in {
		if _, ok := whole[in[i].Ref]; ok {
			take[i] = true
		}
		if take[i] {
			failed = append(failed, in[i])
		}
	}
	return failed, whole
}

// Reset releases the scratch space of every batch processed since the last
// Reset. Call it only once their outputs were written.
func (p *Processor) Reset() {
	for k := range p.outs {
		p.outs[k].Reset()
	}
	clear(p.survivors)
	p.survivors = p.survivors[:0]
}

// Close closes the transforms that hold resources.
func closeTransforms(ctx context.Context, trs []component.Transform) {
	for _, tr := range trs {
		if c, ok := tr.(component.Closer); ok {
			_ = c.Close(ctx)
		}
	}
}
