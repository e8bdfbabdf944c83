package condition

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
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

// `matches` is charged by what Go's regexp does: a match walks each byte
// of the text once per instruction of the compiled pattern at worst, and
// a pattern taken from the event is compiled at each evaluation. It was
// charged a step per 64 bytes of the text, whatever the pattern, so a
// 20 KB event whose pattern is `a?` 5,000 times then `a` 5,000 times
// (matched against 5,000 a's) held a worker 1.4 s within a budget of
// 100 million steps, an 80 KB one 27 s, and a 1 MiB one for about an hour;
// a constant pattern re-run over a long field in a loop went past the
// budget the same way. Each now stops at the budget.
func TestConditionRegexpWorkIsBoundedBySteps(t *testing.T) {
	n := 5000
	hostile := `{"data":{"s":"` + strings.Repeat("a", n) + `","re":"` + strings.Repeat("a?", n) + strings.Repeat("a", n) + `"}}`
	start := time.Now()
	ok, err := MustCompile(`data.s matches data.re`).Eval([]byte(hostile))
	if !strings.Contains(fmt.Sprint(err), "exceeded its budget of 100000000 steps") {
		t.Errorf("an event pattern of %d instructions on %d bytes: (%v, %v) after %v, want the step budget exceeded", 3*n, n, ok, err, time.Since(start))
	}

	// A constant pattern run again and again over one long field.
	body := `{"data":{"body":"` + strings.Repeat("a", 64<<10) + `","keys":[` + strings.Repeat(`1,`, 199) + `1]}}`
	c, err := CompileLimits(`any(data.keys, data.body matches "a.*b.*c.*d")`, Limits{Steps: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	ok, err = c.Eval([]byte(body))
	if !strings.Contains(fmt.Sprint(err), "exceeded its budget of 10000000 steps") {
		t.Errorf("200 matches over 64 KiB within 10000000 steps: (%v, %v) after %v, want the step budget exceeded", ok, err, time.Since(start))
	}

	// Within the budget, `matches` works as before: an ordinary pattern
	// over a long field, a plain word (as cheap as contains), and one
	// event pattern in a loop, compiled once.
	for _, tc := range []struct{ cond, event string }{
		{`data.s matches "^[a-z]+@[a-z]+\\.com$"`, `{"data":{"s":"` + strings.Repeat("a", 100<<10) + `@example.com"}}`},
		{`data.s matches "needle"`, `{"data":{"s":"` + strings.Repeat("a", 1<<20) + `needle"}}`},
		{`any(data.l, # matches data.re)`, `{"data":{"l":[` + strings.Repeat(`"b",`, 200) + `"xy"],"re":"^` + strings.Repeat("(?:x|y)", 2) + `$"}}`},
		{`all(data.l, # matches data.re)`, `{"data":{"l":[` + strings.Repeat(`"x",`, 200) + `"y"],"re":"` + strings.Repeat("(?:x|y)?", 2000) + `"}}`},
	} {
		if ok, err := MustCompile(tc.cond).Eval([]byte(tc.event)); !ok || err != nil {
			t.Errorf("%s on a %d-byte event: (%v, %v), want true", tc.cond, len(tc.event), ok, err)
		}
	}
}
