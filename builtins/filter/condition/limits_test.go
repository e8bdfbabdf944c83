package condition

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// eventWithArrays is {"data":{"tags":["t0",...],"blocked":["B0",...]}}.
func eventWithArrays(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"data":{"tags":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d"`, i)
	}
	b.WriteString(`],"blocked":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"B%d"`, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// namespacedTags is an event whose tags, each prefixed with a namespace of
// nsLen bytes, make tags × nsLen bytes of strings.
func namespacedTags(nsLen, tags int) string {
	var b strings.Builder
	b.WriteString(`{"data":{"ns":"`)
	b.WriteString(strings.Repeat("n", nsLen))
	b.WriteString(`","tags":[`)
	for i := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"a"`)
	}
	b.WriteString(`],"allowed":["x"]}}`)
	return b.String()
}

// A condition's strings are charged against its memory budget before they
// are built: expr's own budget counts elements of arrays and maps, and
// strings built by + were never counted, repeat() only after it allocated.
// One event of 32 KB made a namespaced-tag check allocate 141 MiB; one
// under 1 MiB asks for 60 GB (TestConditionOneEventCannotKillTheProcess).
// With the default budget (8 MiB, for max_event_size 1 MiB) none allocates
// more than about that, and the event fails with a reason saying why
// (found in review).
func TestConditionStringsAreBoundedByTheMemoryBudget(t *testing.T) {
	for _, c := range []struct{ cond, event string }{
		{`any(map(data.tags, data.ns + "/" + #), # in data.allowed)`, namespacedTags(16<<10, 4000)},
		{`reduce(1..25, #acc + #acc, "x") != ""`, `{}`},
		{`repeat(data.s, 999999) != ""`, `{"data":{"s":"` + strings.Repeat("x", 64) + `"}}`},
		{`repeat(repeat("x", 999999), 999999) != ""`, `{}`},
		{`any(data.tags, {let t = #; any(data.blocked, lower(#) == t)})`, string(eventWithArrays(3000))},
	} {
		cond := MustCompile(c.cond)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ok, err := cond.Eval([]byte(c.event))
		runtime.ReadMemStats(&m1)
		if got := m1.TotalAlloc - m0.TotalAlloc; got > 16<<20 {
			t.Errorf("%s on a %d-byte event: allocated %d MiB before answering (%v, %v); want at most 16 MiB", c.cond, len(c.event), got>>20, ok, err)
		}
		var re *RuntimeError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "the condition exceeded its memory budget: it would build more than 8 MiB of strings on this event (8 × max_event_size)") {
			t.Errorf("%s: got (%v, %v), want a RuntimeError saying the memory budget was exceeded", c.cond, ok, err)
		}
	}
	// The budget is the caller's: the same condition passes with room.
	small := namespacedTags(1<<10, 100)
	if ok, err := MustCompile(`any(map(data.tags, data.ns + "/" + #), # in data.allowed)`).Eval([]byte(small)); ok || err != nil {
		t.Errorf("100 tags of 1 KiB with the default budget: (%v, %v), want (false, nil)", ok, err)
	}
	c, err := CompileLimits(`any(map(data.tags, data.ns + "/" + #), # in data.allowed)`, Limits{Bytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Eval([]byte(small)); err == nil || !strings.Contains(err.Error(), "more than 64 KiB of strings") {
		t.Errorf("100 tags of 1 KiB within 64 KiB: %v, want the memory budget exceeded", err)
	}
}

// A condition has a budget of steps: nested loops over an event's arrays
// (every tag against every blocked name) or over a range (10^12
// iterations, which never ended) stop at the budget, with a reason; an
// `in` over an array counts its elements, so `any(tags, # in blocked)` is
// quadratic too. A small budget keeps the test fast; the default is
// DefaultSteps (found in review).
func TestConditionWorkIsBoundedBySteps(t *testing.T) {
	ev := eventWithArrays(3000)
	for _, src := range []string{
		`any(data.tags, {let t = #; any(data.blocked, # == t)})`,
		`any(data.tags, # in data.blocked)`,
		`let r = 1..1000; all(r, all(r, all(r, all(r, true))))`,
		`len(uniq(data.tags)) > 0`,
	} {
		c, err := CompileLimits(src, Limits{Steps: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := c.Eval(ev)
		var re *RuntimeError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "the condition exceeded its budget of 1000000 steps on this event ([filter] condition_budget) in `") {
			t.Errorf("%s on a %d-byte event: got (%v, %v), want the step budget exceeded", src, len(ev), ok, err)
		}
	}
	if c := MustCompile(`true`); c.limits.Steps != DefaultSteps || c.limits.Bytes != DefaultBytes {
		t.Errorf("Compile's limits: %+v, want DefaultSteps and DefaultBytes", c.limits)
	}
	// A condition within the budget is untouched.
	c, _ := CompileLimits(`any(data.tags, # == "t2999")`, Limits{Steps: 100_000})
	if ok, err := c.Eval(ev); !ok || err != nil {
		t.Errorf("one loop of 3000 within 100000 steps: (%v, %v)", ok, err)
	}
}

// EvalContext stops when its context ends (the playground's 10 s bound,
// a worker at the end of the shutdown deadline): the error wraps the
// context's.
func TestConditionStopsWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ok, err := MustCompile(`let r = 1..1000; all(r, all(r, all(r, all(r, true))))`).EvalContext(ctx, []byte(`{}`))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "the condition was stopped: context canceled") {
		t.Fatalf("a cancelled evaluation: (%v, %v), want an error wrapping context.Canceled", ok, err)
	}
	if ok, err := MustCompile(`data.x == 1`).EvalContext(t.Context(), []byte(`{"data":{"x":1}}`)); !ok || err != nil {
		t.Fatalf("a live context: (%v, %v)", ok, err)
	}
}
