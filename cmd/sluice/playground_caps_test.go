package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestPlaygroundKeepsTheProcessLimits: a playground fragment is a client's
// task file, and may not lift its own limits above the process's. With
// max_event_size = "1TiB" a condition could build 8 TiB of strings in each
// of the playground's runs (its 10 s bound nothing in memory), and with
// condition_budget its steps (review). Lower limits are allowed.
func TestPlaygroundKeepsTheProcessLimits(t *testing.T) {
	var s settings
	s.maxEventSize = 1 << 20
	shared := component.NewShared()
	defer shared.Close()
	play := newPlayground(s, zerolog.Nop(), shared)
	cond := `[filter]
condition = 'len(repeat("` + strings.Repeat("x", 64) + `", 1000000)) > 0'
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The process's budget refuses the 64 MB string.
	if _, _, err := play(ctx, `{"a":1}`, cond); err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("without max_event_size in the fragment: err %v, want the memory budget refusing", err)
	}
	for _, c := range []struct{ fragment, want string }{
		{"max_event_size = \"64MiB\"\n" + cond, "max_event_size"}, // under the 256 MiB cap, above the process's 1 MiB
		{"[filter]\ncondition = 'true'\ncondition_budget = 1000000000000\n", "condition_budget"},
	} {
		outs, filtered, err := play(ctx, `{"a":1}`, c.fragment)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "may not raise") {
			t.Errorf("fragment %q: outputs %d, filtered %v, err %v: want it refused, naming %s", c.fragment, len(outs), filtered, err, c.want)
		}
	}
	if _, _, err := play(ctx, `{"a":1}`, "max_event_size = \"64KiB\"\n[filter]\ncondition = 'true'\ncondition_budget = 5000\n"); err != nil {
		t.Errorf("lower limits: %v", err)
	}
}
