package runner_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/runner"
)

// everyKey sets every task-level and engine key to a value other than its
// default (pattern_json here, its table form in everyKeyPattern).
const everyKey = `name = "keys"
description = "every key"
max_in_flight = 7
max_event_size = "3KiB"
exactly_once = true

[source]
type = "stdin"
concurrency = 3
order = "key"

[filter]
pattern_json = '{"data":{"k":["yes"]}}'
condition = 'data.n > 1 && all(data.l ?? [], # > 0)'
condition_budget = 1000

[[transform]]
type = "complete"

[sink]
type = "stdout"
batch = { max_events = 9, max_wait = "7ms", max_bytes = "5KiB" }

[sink.buffer]
type = "disk"
path = "buf"
max_size = "64KiB"
segment_size = "8KiB"
when_full = "drop_oldest"
fsync = "never"

[retry]
policy = "custom"
attempts = 4
initial = "3ms"
max = "90ms"
max_age = "1m"
multiplier = 3
jitter = 0.5

[errors]
tolerance = "none"

[dead_letter]
type = "file"
path = "dlq.jsonl"
batch = { max_events = 11, max_bytes = "2KiB" }
`

const everyKeyPattern = `name = "keys2"
[source]
type = "stdin"
[filter.pattern.data]
k = ["yes"]
[sink]
type = "http"
url = "http://127.0.0.1:1/hook"
[retry]
policy = "exponential"
`

func load(t *testing.T, text string) *config.Task {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "task.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	l := &config.Loader{Registry: r, BuildFilter: builtins.BuildFilter, StateDir: filepath.Join(dir, "state"),
		Shared: component.NewShared(), Logger: zerolog.Nop()}
	task, err := l.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { task.Discard(t.Context()) })
	return task
}

// leafPaths lists the keys of fs as dotted paths, tables by their keys.
func leafPaths(prefix string, fs []component.Field) []string {
	var out []string
	for _, f := range fs {
		p := prefix + f.Name
		if len(f.Fields) > 0 {
			out = append(out, leafPaths(p+".", f.Fields)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestEveryTaskKeyReachesTheEngine decodes a task that sets every key the
// loader itself decodes (top level, [filter], [retry], [errors], and the
// engine keys of [source], [sink] and [dead_letter]) to a value other than
// its default, and checks that the engine's Definition holds each value. A
// key without a check here fails the test: a key the loader accepts must do
// something.
func TestEveryTaskKeyReachesTheEngine(t *testing.T) {
	task := load(t, everyKey)
	d := runner.Definition(task)
	d2 := runner.Definition(load(t, everyKeyPattern))
	matches := func(f engine.Filter, ev string) bool {
		ok, err := f.Match(t.Context(), []byte(ev))
		return ok && err == nil
	}
	checks := map[string]func() bool{
		"name":           func() bool { return d.Name == "keys" },
		"description":    func() bool { return d.Description == "every key" },
		"max_in_flight":  func() bool { return d.Engine.MaxInFlight == 7 },
		"max_event_size": func() bool { return d.Engine.MaxEvent == 3<<10 },
		"exactly_once":   func() bool { return d.ExactlyOnce },
		"source":         func() bool { return d.SourceType == "stdin" && d.Source != nil },
		"filter.pattern": func() bool {
			return matches(d2.Filter, `{"data":{"k":"yes"}}`) && !matches(d2.Filter, `{"data":{"k":"no"}}`)
		},
		"filter.pattern_json": func() bool {
			return matches(d.Filter, `{"data":{"k":"yes","n":2}}`) && !matches(d.Filter, `{"data":{"k":"no","n":2}}`)
		},
		"filter.condition": func() bool { return !matches(d.Filter, `{"data":{"k":"yes","n":1}}`) },
		"filter.condition_budget": func() bool {
			_, err := d.Filter.Match(t.Context(), []byte(`{"data":{"k":"yes","n":2,"l":[`+strings.Repeat("1,", 1000)+`1]}}`))
			return err != nil && strings.Contains(err.Error(), "budget of 1000 steps")
		},
		"transform": func() bool { return len(d.Transforms) == 1 },
		"sink":      func() bool { return d.SinkType == "stdout" && d.Sink != nil },
		"retry.policy": func() bool {
			return reflect.DeepEqual(d2.Retry, delivery.Exponential) && d.Retry.Attempts == 4
		},
		"retry.attempts": func() bool { return d.Retry.Attempts == 4 },
		"retry.initial":  func() bool { return d.Retry.Initial == 3*time.Millisecond },
		"retry.max":      func() bool { return d.Retry.Max == 90*time.Millisecond },
		"retry.max_age":  func() bool { return d.Retry.MaxAge == time.Minute },
		"retry.multiplier": func() bool {
			return d.Retry.Multiplier == 3 && d.Retry.Interval(2, func() float64 { return 0 }) == 9*time.Millisecond
		},
		"retry.jitter":     func() bool { return d.Retry.Jitter == 0.5 },
		"errors.tolerance": func() bool { return d.Tolerance == engine.ToleranceNone },
		"dead_letter":      func() bool { return d.DeadLetter != nil },

		"source.concurrency":    func() bool { return d.Engine.Concurrency == 3 },
		"source.order":          func() bool { return d.Engine.Order == engine.OrderKey },
		"sink.batch.max_events": func() bool { return d.Engine.MaxEvents == 9 },
		"sink.batch.max_wait":   func() bool { return d.Engine.MaxWait == 7*time.Millisecond },
		"sink.batch.max_bytes":  func() bool { return d.Engine.MaxBytes == 5<<10 },
		"sink.buffer.type":      func() bool { return d.Engine.Buffer != nil },
		"sink.buffer.path": func() bool {
			return d.Engine.Buffer != nil && d.Engine.Buffer.Dir == filepath.Join(filepath.Dir(task.File), "buf")
		},
		"sink.buffer.max_size":     func() bool { return d.Engine.Buffer != nil && d.Engine.Buffer.MaxSize == 64<<10 },
		"sink.buffer.segment_size": func() bool { return d.Engine.Buffer != nil && d.Engine.Buffer.SegmentSize == 8<<10 },
		"sink.buffer.when_full":    func() bool { return d.Engine.Buffer != nil && d.Engine.Buffer.WhenFull == buffer.DropOldest },
		"sink.buffer.fsync":        func() bool { return d.Engine.Buffer != nil && d.Engine.Buffer.NoSync },

		"dead_letter.batch.max_events": func() bool { return d.Engine.DeadLetterMaxEvents == 11 },
		"dead_letter.batch.max_bytes":  func() bool { return d.Engine.DeadLetterMaxBytes == 2<<10 },
		// Rejected (TestDeadLetterMaxWaitIsRejected): dead letters are
		// written as soon as they fail.
		"dead_letter.batch.max_wait": func() bool { return true },
	}
	var keys []string
	keys = append(keys, leafPaths("", config.TaskFields())...)
	for table, fs := range config.EngineFields() {
		keys = append(keys, leafPaths(table+".", fs)...)
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
		check, ok := checks[k]
		switch {
		case !ok:
			t.Errorf("%s: the loader decodes this key but no check shows it reaching the engine: add one here (or reject the key)", k)
		case !check():
			t.Errorf("%s: the value set in the task file did not reach the engine's Definition", k)
		}
	}
	for k := range checks {
		if !seen[k] {
			t.Errorf("%s: checked here but the loader has no such key", k)
		}
	}
	if len(keys) < 30 {
		t.Fatalf("only %d keys listed: %v", len(keys), keys)
	}
}

// TestComponentDefaultsReachTheEngine: a sink that declares engine keys
// (the HTTP sink's batch) documents its own defaults; the engine follows
// them when the task does not set the keys.
func TestComponentDefaultsReachTheEngine(t *testing.T) {
	d := runner.Definition(load(t, everyKeyPattern))
	if d.Engine.MaxEvents != 100 || d.Engine.MaxWait != time.Second || d.Engine.MaxBytes != 1<<20 {
		t.Fatalf("http sink without batch: engine max_events %d, max_wait %s, max_bytes %d; want the sink's documented 100, 1s, 1MiB",
			d.Engine.MaxEvents, d.Engine.MaxWait, d.Engine.MaxBytes)
	}
	d = runner.Definition(load(t, strings.Replace(everyKeyPattern, `url = "http://127.0.0.1:1/hook"`, `url = "http://127.0.0.1:1/hook"
batch = { max_events = 5 }`, 1)))
	if d.Engine.MaxEvents != 5 || d.Engine.MaxWait != time.Second {
		t.Fatalf("http sink with max_events = 5: engine max_events %d, max_wait %s", d.Engine.MaxEvents, d.Engine.MaxWait)
	}
}

func TestDeadLetterMaxWaitIsRejected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "task.toml")
	text := "name = \"x\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n[dead_letter]\ntype = \"file\"\npath = \"d.jsonl\"\nbatch = { max_wait = \"1s\" }\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	_, err := (&config.Loader{Registry: r, Logger: zerolog.Nop()}).LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), "dead_letter.batch.max_wait: max_wait does not apply to [dead_letter]") {
		t.Fatalf("want max_wait rejected in [dead_letter], got %v", err)
	}
	if strings.Count(err.Error(), "dead_letter.batch.max_wait:") != 1 {
		t.Fatalf("reported more than once:\n%v", err)
	}
}

func TestPolicy(t *testing.T) {
	for _, c := range []struct {
		r    config.Retry
		want delivery.Policy
	}{
		{config.Retry{Policy: "none"}, delivery.None},
		{config.Retry{}, delivery.Backoff},
		{config.Retry{Policy: "backoff"}, delivery.Backoff},
		{config.Retry{Policy: "exponential"}, delivery.Exponential},
		{config.Retry{Policy: "custom", Attempts: 2, Initial: time.Second, Max: time.Minute, Multiplier: 1.5, Jitter: 0.1, MaxAge: time.Hour},
			delivery.Policy{Attempts: 2, Initial: time.Second, Max: time.Minute, Multiplier: 1.5, Jitter: 0.1, MaxAge: time.Hour}},
	} {
		if got := runner.Policy(c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v: got %+v, want %+v", c.r, got, c.want)
		}
	}
}
