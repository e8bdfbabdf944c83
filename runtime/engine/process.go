package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

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

	outs      []component.Output
	survivors []message.Message
	stages    []string
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
			ok, err := p.Filter.Match(m.Payload)
			if err != nil {
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

// apply runs one transform; when the transform fails the whole batch, the
// batch is split until the failing events are isolated. Retryable
// per-event failures are retried on the task's policy.
func (p *Processor) apply(ctx context.Context, k int, tr component.Transform, in []message.Message, o *component.Output, fates []Fate) error {
	if len(in) == 0 {
		return nil
	}
	start := len(o.Messages)
	fstart := len(o.Failures)
	err := tr.Apply(ctx, in, o)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.Messages, o.Failures = o.Messages[:start], o.Failures[:fstart]
		if len(in) == 1 {
			fates[in[0].Ref] = Fate{Stage: p.stages[k], Err: err, Attempts: 1}
			return nil
		}
		h := len(in) / 2
		if err := p.apply(ctx, k, tr, in[:h], o, fates); err != nil {
			return err
		}
		return p.apply(ctx, k, tr, in[h:], o, fates)
	}
	for _, f := range o.Failures[fstart:] {
		if component.ClassOf(f.Err) == component.ClassRetryable && p.Retry.Attempts > 0 {
			if err := p.retry(ctx, k, tr, in, f, o, fates); err != nil {
				return err
			}
			continue
		}
		fates[f.Ref] = Fate{Stage: p.stages[k], Err: f.Err, Attempts: 1}
	}
	return nil
}

// retry runs the transform again on the one event that asked for it.
func (p *Processor) retry(ctx context.Context, k int, tr component.Transform, in []message.Message, f component.Failure, o *component.Output, fates []Fate) error {
	var ev *message.Message
	for i := range in {
		if in[i].Ref == f.Ref {
			ev = &in[i]
			break
		}
	}
	if ev == nil {
		fates[f.Ref] = Fate{Stage: p.stages[k], Err: f.Err, Attempts: 1}
		return nil
	}
	lastErr := f.Err
	first := p.Clock.Now()
	for attempt := 1; attempt <= p.Retry.Attempts; attempt++ {
		w := p.Retry.Interval(attempt, rand.Float64)
		if p.Retry.MaxAge > 0 && p.Clock.Now().Add(w).After(first.Add(p.Retry.MaxAge)) {
			break
		}
		if err := p.Clock.Sleep(ctx, w); err != nil {
			return err
		}
		mark := len(o.Failures)
		err := tr.Apply(ctx, []message.Message{*ev}, o)
		if err == nil && len(o.Failures) == mark {
			return nil
		}
		if err == nil {
			lastErr = o.Failures[mark].Err
			o.Failures = o.Failures[:mark]
			if component.ClassOf(lastErr) != component.ClassRetryable {
				fates[f.Ref] = Fate{Stage: p.stages[k], Err: lastErr, Attempts: attempt + 1}
				return nil
			}
		} else {
			lastErr = err
		}
	}
	fates[f.Ref] = Fate{Stage: p.stages[k], Err: fmt.Errorf("%w: %w", delivery.ErrGaveUp, lastErr), Attempts: p.Retry.Attempts + 1}
	return nil
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
