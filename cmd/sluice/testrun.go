package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/lines"
	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
)

// testRun is the code path `sluice test` and the admin API's playground
// share: a loaded task's filter and transforms, opened, run over events
// without a source or a sink; each output comes back as the stdout sink
// writes it.
type testRun struct {
	proc *engine.Processor
}

// testFailure is an event that failed in a testRun.
type testFailure struct {
	index int // the event's index in the run's input
	stage string
	err   error
}

// openTestRun opens the transforms of task (the caller discards the task).
func openTestRun(ctx context.Context, task *config.Task) (*testRun, error) {
	def := runner.Definition(task)
	for i, tr := range def.Transforms {
		if o, ok := tr.(component.Opener); ok {
			if err := o.Open(ctx); err != nil {
				return nil, fmt.Errorf("open %s: %w", component.FormatPath(task.Transforms[i].Path), err)
			}
		}
	}
	return &testRun{proc: engine.NewProcessor(def.Filter, def.Transforms, def.Engine.MaxEvent, def.Retry)}, nil
}

// run runs msgs (msgs[i].Ref == i) through the filter and transforms. It
// returns the outputs as the stdout sink writes them (without the newline)
// with the index of the event each came from, and the events that failed.
func (r *testRun) run(ctx context.Context, msgs []message.Message) (outs [][]byte, from []int, failed []testFailure, err error) {
	fates := make([]engine.Fate, len(msgs))
	res, err := r.proc.Process(ctx, msgs, fates)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.proc.Reset()
	for i := range res {
		line, err := lines.Append(nil, res[i].Payload)
		if err != nil {
			failed = append(failed, testFailure{index: int(res[i].Ref), stage: "sink", err: err})
			continue
		}
		outs = append(outs, line[:len(line)-1])
		from = append(from, int(res[i].Ref))
	}
	for i, f := range fates {
		if f.Failed() {
			failed = append(failed, testFailure{index: i, stage: f.Stage, err: f.Err})
		}
	}
	return outs, from, failed, nil
}

// playgroundTask is what the fragment of a playground run is wrapped in: a
// task needs a name, a source and a sink, which the run does not use.
const (
	playgroundHead = "name = \"playground\"\n"
	playgroundTail = "\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n"
)

// newPlayground returns the admin API's playground: the fragment is loaded
// as a task file (its [filter] and [[transform]] tables, wrapped with a
// name, a source and a sink) and the event runs through it as `sluice test
// --raw` runs a line. ${env:...} references are not resolved (each is an
// unset variable): the playground must not read the process's environment.
func newPlayground(s settings, log zerolog.Logger, shared *component.Shared) admin.Playground {
	return func(ctx context.Context, event, fragment string) ([][]byte, bool, error) {
		if strings.TrimSpace(event) == "" {
			return nil, false, &admin.PositionError{Message: "the event is empty: paste one event (JSON, or a line of text)"}
		}
		loader := newLoader(s, log, metrics.New(), shared)
		loader.LookupEnv = func(string) (string, bool) { return "", false }
		// The fragment is a client's: it may not lift the memory and time
		// its run may take (max_event_size, condition_budget) above the
		// process's limits.
		loader.Capped = true
		loader.Trial = true
		task, err := loader.Load("playground.toml", []byte(playgroundHead+fragment+playgroundTail))
		if err != nil {
			return nil, false, playgroundError(err)
		}
		defer task.Discard(context.WithoutCancel(ctx))
		run, err := openTestRun(ctx, task)
		if err != nil {
			return nil, false, &admin.PositionError{Message: err.Error()}
		}
		ev := []byte(strings.TrimRight(event, "\r\n"))
		outs, _, failed, err := run.run(ctx, []message.Message{{Payload: ev, Event: ev, Pos: message.Position{Stream: "playground"}}})
		if err != nil {
			return nil, false, err
		}
		if len(failed) > 0 {
			f := failed[0]
			return nil, false, &admin.PositionError{Message: f.stage + ": " + f.err.Error(), Stage: f.stage}
		}
		return outs, len(outs) == 0, nil
	}
}

// playgroundError turns load diagnostics into an error positioned in the
// fragment (the wrapping's first line shifted its lines by one).
func playgroundError(err error) error {
	var ds config.Diagnostics
	if !errors.As(err, &ds) || len(ds) == 0 {
		return &admin.PositionError{Message: err.Error()}
	}
	msgs := make([]string, len(ds))
	for i, d := range ds {
		d.File = "fragment"
		if d.Line > 0 {
			d.Line--
		}
		msgs[i] = d.Error()
	}
	d := ds[0]
	pe := &admin.PositionError{Message: strings.Join(msgs, "\n")}
	if d.Line > 1 {
		pe.Line, pe.Column = d.Line-1, d.Col
	}
	return pe
}
