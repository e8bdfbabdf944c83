package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// waitClock records the retry waits instead of sleeping, moving its time
// on by each.
type waitClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *waitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *waitClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

// throttled is a transform whose backend answers "429, retry after ra"
// to its first down calls (a remote function), then passes events on.
type throttled struct {
	down, calls int
	ra          time.Duration
}

func (s *throttled) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	s.calls++
	for i := range in {
		if s.calls <= s.down {
			out.Fail(&in[i], component.Retryable(errors.New("429 too many requests"), s.ra))
			continue
		}
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// TestTransformRetryWaitsForRetryAfter: a transform failure that carries a
// server's Retry-After (a remote function answering 429 or 503 with the
// header) waits that long when it is longer than the policy's interval, as
// a sink's does (docs/delivery.md, "Retry policies"; the function
// transform's doc says the header is passed on). The processor ignored it
// and called the throttled function again after the policy's 1 s.
func TestTransformRetryWaitsForRetryAfter(t *testing.T) {
	for _, c := range []struct {
		name   string
		ra     time.Duration // the server's Retry-After
		maxAge time.Duration
		want   time.Duration
	}{
		// The policy's interval is 1s: the server's 30s wins.
		{"longer than the policy's interval", 30 * time.Second, 0, 30 * time.Second},
		// A Retry-After longer than what is left of max_age waits only
		// until max_age, then tries once more, as a sink does: it never
		// waits past max_age.
		{"cut at max_age", time.Hour, 10 * time.Minute, 10 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &throttled{down: 1, ra: c.ra}
			p := engine.NewProcessor(nil, []component.Transform{tr}, 1<<20,
				delivery.Policy{Attempts: 3, Initial: time.Second, Max: time.Minute, Multiplier: 2, MaxAge: c.maxAge})
			clk := &waitClock{now: time.Unix(1e9, 0)}
			p.Clock = clk
			msgs := []message.Message{{Payload: []byte(`{"k":1}`), Ref: 0}}
			fates := make([]engine.Fate, 1)
			outs, err := p.Process(t.Context(), msgs, fates)
			if err != nil || len(outs) != 1 || fates[0].Failed() {
				t.Fatalf("outputs %d, err %v, fate %+v; want the event through after one retry", len(outs), err, fates[0])
			}
			if len(clk.waits) != 1 || clk.waits[0] != c.want {
				t.Fatalf("waits %v; want one wait of %s (Retry-After %s, max_age %s, the policy's interval 1s)", clk.waits, c.want, c.ra, c.maxAge)
			}
		})
	}
}

// TestTransformRetryCountsTheTriesMadeAtMaxAge: an event whose retries stop
// at max_age before the policy's attempts ran out is dead-lettered with the
// number of tries actually made (docs/delivery.md: "attempts counts tries
// on this schedule"), not the policy's attempts + 1 it never reached.
func TestTransformRetryCountsTheTriesMadeAtMaxAge(t *testing.T) {
	tr := &throttled{down: 1 << 30}
	p := engine.NewProcessor(nil, []component.Transform{tr}, 1<<20,
		delivery.Policy{Attempts: 10, Initial: time.Minute, Max: time.Minute, Multiplier: 2, MaxAge: 150 * time.Second})
	clk := &waitClock{now: time.Unix(1e9, 0)}
	p.Clock = clk
	msgs := []message.Message{{Payload: []byte(`{"k":1}`), Ref: 0}}
	fates := make([]engine.Fate, 1)
	if _, err := p.Process(t.Context(), msgs, fates); err != nil {
		t.Fatal(err)
	}
	if !fates[0].Failed() || !errors.Is(fates[0].Err, delivery.ErrGaveUp) {
		t.Fatalf("fate %+v; want retries exhausted", fates[0])
	}
	// Tries at 0, 1m, 2m and 2m30s (max_age), then no time is left.
	if tr.calls != 4 || fates[0].Attempts != 4 {
		t.Fatalf("%d calls, the dead-letter record says %d attempts; want 4 and 4 (waits %v)", tr.calls, fates[0].Attempts, clk.waits)
	}
}

// unstartable is a transform that fails whole calls retryably until its
// clock has moved (a retry wait passed), as a WASM transform does while no
// instance of its module can be started; then it passes events on.
type unstartable struct {
	clk   *waitClock
	since time.Time
	calls int
}

func (s *unstartable) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	s.calls++
	if !s.clk.Now().After(s.since) {
		return component.Retryable(errors.New("wasm module m: start module: cannot allocate memory"), 0)
	}
	for i := range in {
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// TestTransformWholeCallRetryableFailureIsRetried: a transform that fails
// its whole call with a retryable error (no instance of a WASM module could
// start) has its events retried on the task's policy (docs/delivery.md:
// retryable errors retry on the policy, then the event fails), in one call
// per attempt. The split isolating the failing events gave each one the
// error with attempts 1, and it went to the dead-letter queue at once.
func TestTransformWholeCallRetryableFailureIsRetried(t *testing.T) {
	clk := &waitClock{now: time.Unix(1e9, 0)}
	tr := &unstartable{clk: clk, since: clk.now}
	p := engine.NewProcessor(nil, []component.Transform{tr}, 1<<20,
		delivery.Policy{Attempts: 3, Initial: time.Second, Max: time.Minute, Multiplier: 2})
	p.Clock = clk
	msgs := make([]message.Message, 4)
	for i := range msgs {
		msgs[i] = message.Message{Payload: []byte(`{"k":1}`), Ref: int32(i)}
	}
	fates := make([]engine.Fate, len(msgs))
	outs, err := p.Process(t.Context(), msgs, fates)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fates {
		if fates[i].Failed() {
			t.Fatalf("event %d failed with %v (attempts %d); want it through after one retry", i, fates[i].Err, fates[i].Attempts)
		}
	}
	if len(outs) != 4 || len(clk.waits) != 1 {
		t.Fatalf("%d outputs after %d waits; want 4 after 1", len(outs), len(clk.waits))
	}
	// 7 calls to isolate the 4 events, then one retry for them all.
	if tr.calls != 8 {
		t.Fatalf("%d transform calls, want 8", tr.calls)
	}
}
