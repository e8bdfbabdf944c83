package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Result is the fate of one record handed to Deliver.
type Result struct {
	// Err is nil when the record was delivered; otherwise the final failure
	// (event-permanent, or retryable with the retries exhausted).
	Err error
	// Attempts counts the writes that carried the record.
	Attempts int
}

// ErrGaveUp wraps the last error of a record whose retries ran out.
var ErrGaveUp = errors.New("retries exhausted")

// Stop is returned by Deliver when the task cannot go on: a task-permanent
// failure (auth refused, unknown topic) or the end of ctx. Records without a
// final Result were then not handled and must not be committed.
type Stop struct{ Err error }

func (s *Stop) Error() string { return s.Err.Error() }
func (s *Stop) Unwrap() error { return s.Err }

// Deliverer writes batches through a sink with retries and splitting.
type Deliverer struct {
	Write  func(ctx context.Context, msgs []message.Message) error
	Policy Policy
	Clock  Clock
	// Rand returns a float in [0,1) for jitter; nil means math/rand.
	Rand func() float64
	// OnRetry, if set, is told about every retry before its wait.
	OnRetry func(attempt int, wait time.Duration, err error)
	// Interrupt, when closed, ends retry waits at once (a Stop wrapping
	// ErrInterrupted): the caller is stopping and would rather keep the
	// records for later than wait. A retry under way is cut short too; a
	// first try is not (see write).
	Interrupt <-chan struct{}
	// Persist makes retryable failures never final: once the policy's
	// retries or its max_age are spent, the write is tried again every
	// Policy.Cap() for as long as it takes. The disk buffer's drain sets it:
	// the events are safe on disk, so giving up would only lose them.
	// Event-permanent and task-permanent failures are final as ever.
	Persist bool
}

// ErrInterrupted is wrapped by the Stop of a delivery whose retry wait was
// interrupted.
var ErrInterrupted = errors.New("retry wait interrupted: stopping")

// Deliver writes msgs and sets results[i] for each record. Retryable
// failures are retried on the policy (a longer Retry-After from the server
// wins, within the policy's maximum age); a batch rejected as a whole with an
// event-permanent error is split at once until the offending records are
// isolated; per-record errors (component.RecordErrors) retry or fail only
// the records concerned. It returns a *Stop when the task cannot go on.
func (d *Deliverer) Deliver(ctx context.Context, msgs []message.Message, results []Result) error {
	if len(msgs) == 0 {
		return nil
	}
	for i := range results[:len(msgs)] {
		results[i] = Result{}
	}
	return d.deliver(ctx, msgs, results, 1, d.clock().Now())
}

func (d *Deliverer) clock() Clock {
	if d.Clock == nil {
		return SystemClock{}
	}
	return d.Clock
}

func (d *Deliverer) rand() float64 {
	if d.Rand == nil {
		return defaultRand()
	}
	return d.Rand()
}

func (d *Deliverer) deliver(ctx context.Context, msgs []message.Message, res []Result, attempt int, first time.Time) error {
	for {
		// Attempts counts tries on the retry schedule; the writes that split
		// a rejected batch to isolate a poison record are not retries.
		for i := range msgs {
			res[i].Attempts = attempt
		}
		err := d.write(ctx, msgs, attempt)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return &Stop{Err: ctx.Err()}
		}
		if errors.Is(err, ErrInterrupted) {
			return &Stop{Err: err}
		}
		var re *component.RecordErrors
		if errors.As(err, &re) {
			return d.recordErrors(ctx, msgs, res, re, attempt, first)
		}
		switch component.ClassOf(err) {
		case component.ClassTaskPermanent:
			return &Stop{Err: err}
		case component.ClassEventPermanent:
			if len(msgs) == 1 {
				res[0].Err = err
				return nil
			}
			// Isolate the poison records at once: no wait, the same attempt.
			h := len(msgs) / 2
			if err := d.deliver(ctx, msgs[:h], res[:h], attempt, first); err != nil {
				return err
			}
			return d.deliver(ctx, msgs[h:], res[h:], attempt, first)
		}
		wait, ok := d.wait(attempt, err, first)
		if !ok {
			final := fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, attempt, err)
			for i := range msgs {
				res[i].Err = final
			}
			return nil
		}
		if d.OnRetry != nil {
			d.OnRetry(attempt, wait, err)
		}
		if err := d.sleep(ctx, wait); err != nil {
			return &Stop{Err: err}
		}
		attempt++
	}
}

// write runs one try of msgs. A retry (the sink already failed these
// records) is cut short when Interrupt closes: the sink is likely still
// down, and the try would hold the stop until it timed out (a Kafka produce
// to unreachable brokers: up to the shutdown deadline). A first try is left
// to finish, so that a stop does not turn a healthy delivery into records
// sent again by the next run. A try cut short fails with ErrInterrupted.
func (d *Deliverer) write(ctx context.Context, msgs []message.Message, attempt int) error {
	if attempt == 1 || d.Interrupt == nil {
		return d.Write(ctx, msgs)
	}
	ictx, cancel, ok := d.interruptible(ctx)
	if !ok {
		return ErrInterrupted
	}
	defer cancel()
	err := d.Write(ictx, msgs)
	if err != nil && ctx.Err() == nil && ictx.Err() != nil {
		return fmt.Errorf("%w (a retry under way was cut short: %w)", ErrInterrupted, err)
	}
	return err
}

// sleep waits d, or less when ctx ends or Interrupt closes.
func (d *Deliverer) sleep(ctx context.Context, wait time.Duration) error {
	if d.Interrupt == nil {
		return d.clock().Sleep(ctx, wait)
	}
	ictx, cancel, ok := d.interruptible(ctx)
	if !ok {
		return ErrInterrupted
	}
	defer cancel()
	if err := d.clock().Sleep(ictx, wait); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrInterrupted
	}
	return nil
}

// interruptible returns a context that also ends when Interrupt closes,
// or ok false when it has closed already.
func (d *Deliverer) interruptible(ctx context.Context) (ictx context.Context, cancel context.CancelFunc, ok bool) {
	select {
	case <-d.Interrupt:
		return nil, nil, false
	default:
	}
	ictx, cancel = context.WithCancel(ctx)
	go func() {
		select {
		case <-d.Interrupt:
			cancel()
		case <-ictx.Done():
		}
	}()
	return ictx, cancel, true
}

// wait returns how long to wait before retry number attempt, or false when
// the policy says to give up.
func (d *Deliverer) wait(attempt int, err error, first time.Time) (time.Duration, bool) {
	p := d.Policy
	if attempt > p.Attempts {
		return d.persist(err)
	}
	w := p.Interval(attempt, d.rand)
	if ra := component.RetryAfter(err); ra > w {
		w = ra
		if d.Persist {
			// A buffered drain never gives up, so a server asking for days
			// would park it for days: it gets the hour persist gives it.
			w = min(w, MaxPersistInterval)
		}
	}
	if p.MaxAge > 0 {
		left := first.Add(p.MaxAge).Sub(d.clock().Now())
		if left <= 0 {
			return d.persist(err)
		}
		w = min(w, left)
	}
	return w, true
}

// persist is the wait once the policy is spent: none (give up) unless
// Persist, else the policy's cap, or longer if the server asks for it.
func (d *Deliverer) persist(err error) (time.Duration, bool) {
	if !d.Persist {
		return 0, false
	}
	w := d.Policy.Cap()
	if ra := component.RetryAfter(err); ra > w {
		w = min(ra, MaxPersistInterval)
	}
	return w, true
}

// recordErrors handles a write that reported per-record failures: the
// records not listed were delivered; event-permanent ones fail; retryable
// ones are written again on the policy.
func (d *Deliverer) recordErrors(ctx context.Context, msgs []message.Message, res []Result, re *component.RecordErrors, attempt int, first time.Time) error {
	var retry []int
	var lastErr error
	for i, e := range re.Errs {
		if i < 0 || i >= len(msgs) {
			continue
		}
		switch component.ClassOf(e) {
		case component.ClassTaskPermanent:
			return &Stop{Err: e}
		case component.ClassEventPermanent:
			res[i].Err = e
		default:
			retry = append(retry, i)
			lastErr = e
		}
	}
	if len(retry) == 0 {
		return nil
	}
	wait, ok := d.wait(attempt, lastErr, first)
	if !ok {
		for _, i := range retry {
			res[i].Err = fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, attempt, re.Errs[i])
		}
		return nil
	}
	if d.OnRetry != nil {
		d.OnRetry(attempt, wait, lastErr)
	}
	if err := d.sleep(ctx, wait); err != nil {
		return &Stop{Err: err}
	}
	sortInts(retry)
	sub := make([]message.Message, len(retry))
	subRes := make([]Result, len(retry))
	for j, i := range retry {
		sub[j] = msgs[i]
	}
	err := d.deliver(ctx, sub, subRes, attempt+1, first)
	for j, i := range retry {
		res[i] = subRes[j]
	}
	return err
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
