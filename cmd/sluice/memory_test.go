package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"":         -1,
		"off":      math.MaxInt64,
		"48MiB":    48 << 20,
		"64MB":     64e6,
		"1GiB":     1 << 30,
		"20000000": 20e6,
	} {
		got, err := parseMemoryLimit(in)
		if err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-5MiB", "48 MiX", "1MiB"} {
		if _, err := parseMemoryLimit(in); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("parseMemoryLimit(%q): error %v, want one naming --memory-limit", in, err)
		}
	}
}

// TestRunMemoryLimit: sluice run --memory-limit sets the process's soft
// memory limit (what GOMEMLIMIT sets), and a bad value is a usage error.
func TestRunMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	if _, errOut, code := runMain("run", "--memory-limit", "lots", "x.toml"); code != exitUsage || !strings.Contains(errOut, `--memory-limit: invalid size "lots"`) {
		t.Fatalf("--memory-limit lots: exit %d, stderr:\n%s", code, errOut)
	}

	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, []byte(`{"a":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	task := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(task, []byte("name = \"t\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nmode = \"read\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runMain("run", "--progress", "never", "--state-dir", filepath.Join(dir, "state"), "--memory-limit", "48MiB", task)
	if code != exitOK {
		t.Fatalf("sluice run: exit %d, stderr:\n%s", code, errOut)
	}
	if got := debug.SetMemoryLimit(-1); got != 48<<20 {
		t.Fatalf("soft memory limit after --memory-limit 48MiB: %d", got)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), `"a":1`) {
		t.Fatalf("the task's output: %q, %v", b, err)
	}
}

// TestReleaseWhenIdle: the heap is released once per quiet spell that
// follows reading, never while events flow, never twice in a row.
func TestReleaseWhenIdle(t *testing.T) {
	var q quietness
	for i, step := range []struct {
		events uint64
		want   bool
	}{
		{0, false}, {0, false}, // quiet from the start: nothing to give back
		{5, false}, {9, false}, // reading
		{9, true},              // the first quiet tick
		{9, false}, {9, false}, // still quiet
		{12, false}, {12, true}, // another burst, then quiet
	} {
		if got := q.quietAgain(step.events); got != step.want {
			t.Fatalf("tick %d (counter %d): release %v, want %v", i, step.events, got, step.want)
		}
	}

	// The loop releases at the ticks quietAgain names and ends with ctx.
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	released := make(chan struct{}, 1)
	var events atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseWhenIdle(ctx, ticks, events.Load, func() { released <- struct{}{} })
	}()
	events.Store(3)
	ticks <- time.Time{}
	ticks <- time.Time{}
	<-released
	cancel()
	<-done
}
