package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// fakeClock records waits instead of sleeping.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func msgs(n int) []message.Message {
	out := make([]message.Message, n)
	for i := range out {
		out[i].Payload = []byte(fmt.Sprint(i))
	}
	return out
}

func TestExponentialSchedule(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	writes := 0
	d := Deliverer{Policy: Exponential, Clock: clk, Write: func(context.Context, []message.Message) error {
		writes++
		return errors.New("503 unavailable")
	}}
	res := make([]Result, 1)
	if err := d.Deliver(context.Background(), msgs(1), res); err != nil {
		t.Fatal(err)
	}
	// 1, 2, 4 ... 256 s, then 512 s until the 176th retry or the day ends.
	want := []time.Duration{}
	for i := 0; i < 9; i++ {
		want = append(want, time.Duration(1<<i)*time.Second)
	}
	for len(want) < 176 {
		want = append(want, 512*time.Second)
	}
	var total time.Duration
	for _, w := range want {
		total += w
	}
	if total > 24*time.Hour {
		// The day's limit cuts the last interval short.
		t.Logf("schedule sums to %v", total)
	}
	if len(clk.waits) != 176 || writes != 177 {
		t.Fatalf("%d waits, %d writes; want 176 and 177", len(clk.waits), writes)
	}
	for i, w := range want {
		if clk.waits[i] != w {
			t.Fatalf("wait %d = %v, want %v", i+1, clk.waits[i], w)
		}
	}
	if !errors.Is(res[0].Err, ErrGaveUp) || res[0].Attempts != 177 {
		t.Fatalf("result %+v", res[0])
	}
	if clk.now.Sub(time.Unix(0, 0)) > 24*time.Hour {
		t.Fatalf("retried past one day: %v", clk.now.Sub(time.Unix(0, 0)))
	}
}

func TestBackoffSchedule(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	r := []float64{0, 0.5, 0.999}
	i := 0
	d := Deliverer{Policy: Backoff, Clock: clk, Rand: func() float64 { v := r[i%3]; i++; return v },
		Write: func(context.Context, []message.Message) error { return errors.New("timeout") }}
	res := make([]Result, 2)
	if err := d.Deliver(context.Background(), msgs(2), res); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10 * time.Second, 15 * time.Second, 19990 * time.Millisecond}
	if len(clk.waits) != 3 {
		t.Fatalf("waits %v", clk.waits)
	}
	for i := range want {
		if clk.waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", clk.waits, want)
		}
	}
	if res[0].Attempts != 4 || res[1].Err == nil {
		t.Fatalf("results %+v", res)
	}
}

func TestNoneAndRetryAfter(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	d := Deliverer{Policy: None, Clock: clk, Write: func(context.Context, []message.Message) error { return errors.New("down") }}
	res := make([]Result, 1)
	d.Deliver(context.Background(), msgs(1), res)
	if len(clk.waits) != 0 || res[0].Attempts != 1 || res[0].Err == nil {
		t.Fatalf("none retried: %v %+v", clk.waits, res)
	}

	// Retry-After longer than the interval wins; the policy's age caps it.
	n := 0
	d = Deliverer{Policy: Policy{Attempts: 5, Initial: time.Second, Max: time.Second, MaxAge: 90 * time.Second}, Clock: clk,
		Write: func(context.Context, []message.Message) error {
			n++
			if n < 3 {
				return component.Retryable(errors.New("429"), time.Minute)
			}
			return nil
		}}
	clk.waits = nil
	if err := d.Deliver(context.Background(), msgs(1), res); err != nil {
		t.Fatal(err)
	}
	if len(clk.waits) != 2 || clk.waits[0] != time.Minute || clk.waits[1] != 30*time.Second || res[0].Err != nil {
		t.Fatalf("waits %v result %+v", clk.waits, res[0])
	}
}

func TestEventPermanentSplitIsolatesPoison(t *testing.T) {
	clk := &fakeClock{}
	writes := 0
	d := Deliverer{Policy: Backoff, Clock: clk, Write: func(_ context.Context, ms []message.Message) error {
		writes++
		for _, m := range ms {
			if string(m.Payload) == "137" {
				return component.EventPermanent(errors.New("400 bad record"))
			}
		}
		return nil
	}}
	res := make([]Result, 500)
	if err := d.Deliver(context.Background(), msgs(500), res); err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if (i == 137) != (r.Err != nil) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if len(clk.waits) != 0 || writes > 2*9+1 {
		t.Fatalf("split waited %v or wrote %d times", clk.waits, writes)
	}
}

func TestRecordErrorsAndTaskPermanent(t *testing.T) {
	clk := &fakeClock{}
	tries := map[string]int{}
	d := Deliverer{Policy: Policy{Attempts: 2, Initial: time.Second, Max: time.Second}, Clock: clk,
		Write: func(_ context.Context, ms []message.Message) error {
			re := &component.RecordErrors{Errs: map[int]error{}}
			for i, m := range ms {
				p := string(m.Payload)
				tries[p]++
				switch {
				case p == "1":
					re.Errs[i] = component.EventPermanent(errors.New("too large"))
				case p == "2" && tries[p] < 3:
					re.Errs[i] = errors.New("leader not available")
				}
			}
			if len(re.Errs) == 0 {
				return nil
			}
			return re
		}}
	res := make([]Result, 4)
	if err := d.Deliver(context.Background(), msgs(4), res); err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err == nil || res[2].Err != nil || res[2].Attempts != 3 || tries["0"] != 1 || tries["3"] != 1 {
		t.Fatalf("results %+v tries %v", res, tries)
	}
	d.Write = func(context.Context, []message.Message) error {
		return component.TaskPermanent(errors.New("401 unauthorized"))
	}
	var stop *Stop
	if err := d.Deliver(context.Background(), msgs(2), res); !errors.As(err, &stop) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("want Stop, got %v", err)
	}
}

func TestIntervalGrowth(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 3}
	got := []time.Duration{p.Interval(1, nil), p.Interval(2, nil), p.Interval(3, nil), p.Interval(10, nil)}
	want := []time.Duration{time.Second, 3 * time.Second, 9 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("intervals %v, want %v", got, want)
		}
	}
	p.Jitter = 0.5
	if d := p.Interval(2, func() float64 { return 1 }); d != 1500*time.Millisecond {
		t.Fatalf("jittered %v", d)
	}
}

func TestRecordJSON(t *testing.T) {
	r := Record{Event: []byte(`{"a": 1}`), Task: "t", Stage: "transform[2]", Err: component.EventPermanent(errors.New(`bad "x"`)), Attempts: 1,
		Pos: message.Position{Stream: "orders", Partition: 3, Offset: 42}, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got := string(r.AppendJSON(nil))
	want := `{"event":{"a":1},"task":"t","stage":"transform[2]","error":{"class":"event_permanent","message":"bad \"x\""},"attempts":1,"position":{"stream":"orders","partition":3,"offset":42},"time":"2026-01-02T03:04:05Z"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	r.Event = []byte("text\n")
	if got := string(r.AppendJSON(nil)); !strings.HasPrefix(got, `{"event":"text\n",`) {
		t.Fatalf("non-JSON event: %s", got)
	}
}

// TestInterruptEndsRetryWaits: the retry wait ends as soon as Interrupt
// closes. In a synctest bubble time moves only when every goroutine waits,
// so the bubble's clock shows the wait was not slept, however loaded the
// machine.
func TestInterruptEndsRetryWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop := make(chan struct{})
		writes := 0
		d := Deliverer{Policy: Backoff, Interrupt: stop, Write: func(context.Context, []message.Message) error {
			writes++
			if writes == 1 {
				close(stop) // the task starts stopping while the first write fails
			}
			return errors.New("503")
		}}
		start := time.Now()
		err := d.Deliver(context.Background(), msgs(1), make([]Result, 1))
		var s *Stop
		if !errors.As(err, &s) || !errors.Is(err, ErrInterrupted) || writes != 1 || time.Since(start) != 0 {
			t.Fatalf("err %v after %d writes in %v (of the bubble's time), want ErrInterrupted after 1 write, no wait", err, writes, time.Since(start))
		}
	})
}

// TestInterruptCutsARetryShort: a retry under way when the caller starts
// stopping is cut short (the sink failed the batch before, and a hung try
// held the stop until the shutdown deadline), but a first try is left to
// finish: a healthy delivery cut short would be sent again by the next run.
func TestInterruptCutsARetryShort(t *testing.T) {
	t.Run("retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			writes := 0
			d := Deliverer{Policy: Backoff, Interrupt: stop, Write: func(ctx context.Context, _ []message.Message) error {
				writes++
				if writes == 1 {
					return errors.New("503")
				}
				close(stop) // the stop comes while the retry hangs
				<-ctx.Done()
				return fmt.Errorf("dial: %w", ctx.Err())
			}}
			err := d.Deliver(context.Background(), msgs(1), make([]Result, 1))
			var s *Stop
			if !errors.As(err, &s) || !errors.Is(err, ErrInterrupted) || writes != 2 {
				t.Fatalf("err %v after %d writes, want ErrInterrupted during the second", err, writes)
			}
		})
	})
	t.Run("first try", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			release := make(chan struct{})
			var cut bool
			d := Deliverer{Policy: Backoff, Interrupt: stop, Write: func(ctx context.Context, _ []message.Message) error {
				select {
				case <-ctx.Done():
					cut = true
					return ctx.Err()
				case <-release:
					return nil
				}
			}}
			done := make(chan error, 1)
			go func() { done <- d.Deliver(context.Background(), msgs(1), make([]Result, 1)) }()
			synctest.Wait() // the first try is under way
			close(stop)
			synctest.Wait()
			close(release)
			if err := <-done; err != nil || cut {
				t.Fatalf("first try: %v (cut short: %v), want it delivered", err, cut)
			}
		})
	})
}

// TestPersistNeverGivesUp: with Persist, a retryable failure outlasting
// every policy is retried at the policy's cap (at least
// MinPersistInterval) until the sink takes the batch, a simulated day and
// more; an event-permanent failure is still final at once.
func TestPersistNeverGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		cap    time.Duration
	}{
		{"backoff", Backoff, 20 * time.Second},
		{"exponential", Exponential, 512 * time.Second},
		{"none", None, MinPersistInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(0, 0)
			clk := &fakeClock{now: start}
			writes := 0
			d := Deliverer{Policy: tc.policy, Clock: clk, Persist: true, Write: func(context.Context, []message.Message) error {
				writes++
				// Down for 25 simulated hours, then back.
				if clk.Now().Sub(start) < 25*time.Hour {
					return errors.New("503 unavailable")
				}
				return nil
			}}
			res := make([]Result, 3)
			if err := d.Deliver(context.Background(), msgs(3), res); err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("record %d: %v (a persisting delivery must not give up)", i, r.Err)
				}
			}
			last := clk.waits[len(clk.waits)-1]
			if last != tc.cap {
				t.Fatalf("last wait %v, want the cap %v", last, tc.cap)
			}
			if over := clk.Now().Sub(start) - 25*time.Hour; over > tc.cap || over < 0 {
				t.Fatalf("delivered %v after the sink came back, want within one cap (%v)", over, tc.cap)
			}
			if res[0].Attempts != writes {
				t.Fatalf("attempts %d, writes %d", res[0].Attempts, writes)
			}
		})
	}
	clk := &fakeClock{now: time.Unix(0, 0)}
	d := Deliverer{Policy: Backoff, Clock: clk, Persist: true, Write: func(context.Context, []message.Message) error {
		return component.EventPermanent(errors.New("422 bad record"))
	}}
	res := make([]Result, 1)
	if err := d.Deliver(context.Background(), msgs(1), res); err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || len(clk.waits) != 0 {
		t.Fatalf("an event-permanent failure with Persist: %v after %d waits, want final at once", res[0].Err, len(clk.waits))
	}
}

// TestPersistCapsRetryAfter: a buffered drain honours a server's
// Retry-After up to MaxPersistInterval from the first retry on, not only
// once the policy is spent, and never waits past the policy's max_age
// (a sink accepting "Retry-After: 172800" parked the drain for 3 x 48 h).
func TestPersistCapsRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
	}{{"backoff", Backoff}, {"exponential", Exponential}, {"none", None}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			clk := &fakeClock{now: start}
			writes := 0
			d := Deliverer{Policy: tc.policy, Clock: clk, Persist: true, Write: func(context.Context, []message.Message) error {
				writes++
				if writes > 5 {
					return nil
				}
				return component.Retryable(errors.New("503 unavailable"), 48*time.Hour)
			}}
			res := make([]Result, 1)
			if err := d.Deliver(context.Background(), msgs(1), res); err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || len(clk.waits) != 5 {
				t.Fatalf("result %v after waits %v, want delivered after 5 waits", res[0].Err, clk.waits)
			}
			for i, w := range clk.waits {
				if w > MaxPersistInterval {
					t.Fatalf("wait %d is %v, over %v (waits %v)", i+1, w, MaxPersistInterval, clk.waits)
				}
			}
		})
	}
	// Without Persist a Retry-After still wins up to the policy's max_age.
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	d := Deliverer{Policy: Exponential, Clock: clk, Write: func(context.Context, []message.Message) error {
		return component.Retryable(errors.New("503 unavailable"), 48*time.Hour)
	}}
	res := make([]Result, 1)
	if err := d.Deliver(context.Background(), msgs(1), res); err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || len(clk.waits) != 1 || clk.waits[0] != Exponential.MaxAge {
		t.Fatalf("without Persist: %v after waits %v, want one wait of max_age (%v), then the dead-letter queue", res[0].Err, clk.waits, Exponential.MaxAge)
	}
}
