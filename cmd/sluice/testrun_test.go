package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
)

// POST /playground is bounded to 10 s (docs/operations.md) and passes
// newPlayground a context with that deadline, cancelled too when the client
// goes away. The filter condition never looked at it: given a context
// already past its deadline, the playground ran a quadratic condition (9
// million predicate calls) to its end, and one that takes hours kept a core
// busy that long after the request ended. It now stops at once (found in
// review).
func TestPlaygroundConditionStopsAtTheDeadline(t *testing.T) {
	var s settings
	s.maxEventSize = 1 << 20
	shared := component.NewShared()
	defer shared.Close()
	play := newPlayground(s, zerolog.Nop(), shared)

	var b strings.Builder
	b.WriteString(`{"data":{"tags":[`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d"`, i)
	}
	b.WriteString(`]}}`)
	for _, cond := range []string{
		`all(data.tags, {let t = #; all(data.tags, # == t || # != t)})`,
		`let r = 1..1000; all(r, all(r, all(r, all(r, true))))`,
	} {
		fragment := "[filter]\ncondition = '" + cond + "'\n"
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		outs, filtered, err := play(ctx, b.String(), fragment)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s, with the run's deadline passed: %d outputs, filtered %v, err %v; want the run stopped (context.DeadlineExceeded)", cond, len(outs), filtered, err)
		}
	}
}
