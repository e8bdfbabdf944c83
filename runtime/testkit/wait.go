package testkit

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultWait is how long WaitFor waits before it gives up. It is long on
// purpose: a loaded 2-core machine running the race detector may be tens of
// times slower than a laptop, and a test that waits for a condition costs
// nothing extra when the condition comes early.
const DefaultWait = 60 * time.Second

// Scale multiplies d by SLUICE_TEST_TIMEOUT_SCALE (a positive number,
// default 1), for machines slower still (emulated arm).
func Scale(d time.Duration) time.Duration {
	if s := os.Getenv("SLUICE_TEST_TIMEOUT_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(float64(d) * f)
		}
	}
	return d
}

// WaitFor polls cond until it returns true and fails the test if it has not
// after DefaultWait (scaled). what says what was awaited, for the failure
// message.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, DefaultWait, what, cond)
}

// WaitForWithin is WaitFor with a deadline of its own, for the rare test
// whose subject is that something happens within a bound (still generous:
// a bound a loaded machine meets by a wide margin).
func WaitForWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", Scale(d), what)
	}
}

// Eventually polls cond until it returns true or d (scaled) passes and
// reports whether it did. The poll interval grows from 1 ms to 50 ms so a
// fast condition is seen at once and a slow one costs little CPU.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(Scale(d))
	wait := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait) // polling, not synchronisation: the condition decides
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// WaitBlocked waits until some goroutine is parked inside fn, a function
// as a stack trace names it ("(*Source).Read"): waiting on a channel, a
// select, a lock, a timer or the network. A test that must act while a
// call waits (Close unblocks Read) checks that it does instead of sleeping
// and hoping.
func WaitBlocked(t testing.TB, fn string) {
	t.Helper()
	WaitFor(t, fn+" to block", func() bool { return Blocked(fn) })
}

// Blocked reports whether some goroutine is parked inside fn (see
// WaitBlocked); a goroutine other than the test's polls it with Eventually.
func Blocked(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, fn+"(") && !strings.Contains(head, "[running]") && !strings.Contains(head, "[runnable]") {
			return true
		}
	}
	return false
}
