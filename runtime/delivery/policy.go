package delivery

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule (docs/delivery.md, "Retry policies").
type Policy struct {
	// Attempts is the number of retries after the first try.
	Attempts int
	// Initial is the interval before the first retry; Max caps every
	// interval. With Spread set, every interval is drawn uniformly from
	// [Initial, Max] (the "backoff" policy); otherwise the interval starts
	// at Initial and grows by Multiplier up to Max.
	Initial, Max time.Duration
	Multiplier   float64
	Spread       bool
	// Jitter randomizes each grown interval down by up to this fraction, so
	// that many tasks retrying together do not hit a server in lockstep.
	Jitter float64
	// MaxAge stops retrying once the first try is this old (0: no limit).
	MaxAge time.Duration
}

// Policies by name, as docs/delivery.md defines them.
var (
	// Backoff: 3 retries, each after a random 10-20 s.
	Backoff = Policy{Attempts: 3, Initial: 10 * time.Second, Max: 20 * time.Second, Spread: true}
	// Exponential: 1 s doubling to 512 s, then 512 s, up to 176 retries
	// within one day.
	Exponential = Policy{Attempts: 176, Initial: time.Second, Max: 512 * time.Second, Multiplier: 2, MaxAge: 24 * time.Hour}
	// None: no retry.
	None = Policy{}
)

// Interval returns the wait before retry number n (1-based). rnd returns a
// float in [0,1).
func (p Policy) Interval(n int, rnd func() float64) time.Duration {
	if p.Spread {
		if p.Max <= p.Initial {
			return p.Initial
		}
		return p.Initial + time.Duration(rnd()*float64(p.Max-p.Initial))
	}
	d := float64(p.Initial)
	m := p.Multiplier
	if m < 1 {
		m = 1
	}
	for i := 1; i < n && d < float64(p.Max); i++ {
		d *= m
	}
	if p.Max > 0 && d > float64(p.Max) {
		d = float64(p.Max)
	}
	if p.Jitter > 0 {
		d -= d * p.Jitter * rnd()
	}
	return time.Duration(d)
}

// MinPersistInterval is the shortest wait between the endless retries of
// a Deliverer with Persist set: a policy without waits ("none") must not
// spin on a sink that is down. MaxPersistInterval caps a server's
// Retry-After there, so that a wrong header cannot park the drain for days.
const (
	MinPersistInterval = time.Second
	MaxPersistInterval = time.Hour
)

// Cap returns the longest interval of the policy (Max, or Initial when
// larger), at least MinPersistInterval: the wait between retries once the
// policy is spent and the caller never gives up (Deliverer.Persist).
func (p Policy) Cap() time.Duration {
	return max(p.Max, p.Initial, MinPersistInterval)
}

// Clock is the time source of retries, replaceable in tests.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func defaultRand() float64 { return rand.Float64() }
