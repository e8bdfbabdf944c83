package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// flaky is a transform that fails events holding "bad", asks for a retry
// on events holding "retry" (until its third try), panics on nothing, and
// splits events holding "split" in two.
type flaky struct{ tries atomic.Int64 }

func (f *flaky) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	for i := range in {
		m := &in[i]
		switch {
		case bytes.Contains(m.Payload, []byte("bad")):
			out.Fail(m, component.EventPermanent(errors.New("refused by the transform")))
		case bytes.Contains(m.Payload, []byte("retry")):
			if f.tries.Add(1) < 3 {
				out.Fail(m, component.Retryable(errors.New("lookup table not loaded yet"), 0))
				continue
			}
			out.Emit(m, m.Payload)
		case bytes.Contains(m.Payload, []byte("split")):
			out.Emit(m, []byte(`"one"`))
			out.Emit(m, []byte(`"two"`))
		case bytes.Contains(m.Payload, []byte("whole")):
			return errors.New("the whole batch broke")
		default:
			out.Emit(m, m.Payload)
		}
	}
	return nil
}

func TestTransformFailuresRetriesAndFanOut(t *testing.T) {
	in := `{"k":"ok"}` + "\n" + `{"k":"bad"}` + "\n" + `{"k":"retry"}` + "\n" + `{"k":"split"}` + "\n" + `{"k":"whole"}` + "\n"
	src := stdin.New(io.NopCloser(strings.NewReader(in)), &stdin.Config{Format: "json", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
	sink, dlq := &memSink{}, &memSink{}
	tr := &flaky{}
	cfg := task(src, sink, func(c *config.Task) {
		c.Transforms = []config.Component{{Type: "flaky", Instance: tr}}
		c.DeadLetter = &config.Component{Type: "mem", Instance: dlq}
		c.Retry = config.Retry{Policy: "custom", Attempts: 5, Initial: time.Millisecond, Max: time.Millisecond}
	})
	run := engine.New(cfg, opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.payloads()
	if len(got) != 4 || !strings.Contains(got[0], `"ok"`) || !strings.Contains(got[1], `"retry"`) || got[2] != `"one"` || got[3] != `"two"` {
		t.Fatalf("delivered %q", got)
	}
	dead := dlq.payloads()
	if len(dead) != 2 || !strings.Contains(dead[0], `"stage":"transform[0]"`) || !strings.Contains(dead[0], `"bad"`) ||
		!strings.Contains(dead[1], `the whole batch broke`) || !strings.Contains(dead[1], `"whole"`) {
		t.Fatalf("dead letters %q", dead)
	}
	s := run.Stats()
	if s.Delivered != 3 || s.DeadLettered != 2 || s.Out != 4 || tr.tries.Load() != 3 {
		t.Fatalf("stats %+v tries %d", s, tr.tries.Load())
	}
	checkCounts(t, s)
}

// TestTransformRetryKeepsLaneOrder: an event a transform retries keeps its
// place among the events of its lane (one stdin batch): its output reaches
// the sink before the outputs of the events after it.
func TestTransformRetryKeepsLaneOrder(t *testing.T) {
	in := `{"k":"retry","n":1}` + "\n" + `{"k":"split","n":2}` + "\n" + `{"k":"plain","n":3}` + "\n"
	src := stdin.New(io.NopCloser(strings.NewReader(in)), &stdin.Config{Format: "json", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
	sink := &memSink{}
	cfg := task(src, sink, func(c *config.Task) {
		c.Transforms = []config.Component{{Type: "flaky", Instance: &flaky{}}}
		c.Retry = config.Retry{Policy: "custom", Attempts: 5, Initial: time.Millisecond, Max: time.Millisecond}
	})
	if err := engine.New(cfg, opts(t)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.payloads()
	if len(got) != 4 || !strings.Contains(got[0], `"n":1`) || got[1] != `"one"` || got[2] != `"two"` || !strings.Contains(got[3], `"n":3`) {
		t.Fatalf("delivered %q, want the retried event first, then the split one's two outputs in order, then the last", got)
	}
}

func TestTaskPermanentSinkErrorFailsTheTask(t *testing.T) {
	dir := t.TempDir()
	h := newHook(t)
	h.answer.Store(func(string) int { return 401 })
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 10, nil)
	run := engine.New(load(t, dir, fileTask(dir, h.URL, retryFast)), opts(t))
	err := run.Run(context.Background())
	if !errors.Is(err, engine.ErrStartFailed) || run.State() != engine.StartFailed || !strings.Contains(run.Reason().Error(), "401") {
		t.Fatalf("err %v state %v", err, run.State())
	}
	if h.requests.Load() != 1 {
		t.Fatalf("a task-permanent error was retried: %d requests", h.requests.Load())
	}
	// The position is kept: the next run reads the events again.
	h.answer.Store(func(string) int { return 200 })
	run = engine.New(load(t, dir, fileTask(dir, h.URL, retryFast)), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.delivered()) != 10 {
		t.Fatalf("delivered %d after the fix", len(h.delivered()))
	}
}

// outage is a transform whose backend is down for its first calls: every
// event of a call fails retryably, then all succeed (a remote function
// answering 503). It counts calls.
type outage struct {
	down  int64
	calls atomic.Int64
}

func (o *outage) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	if o.calls.Add(1) <= o.down {
		for i := range in {
			out.Fail(&in[i], component.Retryable(errors.New("503 service unavailable"), 0))
		}
		return nil
	}
	for i := range in {
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// TestRetryableFailuresRetryTogether: the events a transform failed
// retryably in one call are retried in one call per attempt, not one
// call (and one wait) per event.
func TestRetryableFailuresRetryTogether(t *testing.T) {
	var b strings.Builder
	for range 50 {
		b.WriteString(`{"k":"v"}` + "\n")
	}
	src := stdin.New(io.NopCloser(strings.NewReader(b.String())), &stdin.Config{Format: "json", BatchSize: 50, Source: "s", Type: "t"}, component.Env{})
	sink := &memSink{}
	tr := &outage{down: 3}
	cfg := task(src, sink, func(c *config.Task) {
		c.Transforms = []config.Component{{Type: "outage", Instance: tr}}
		c.Retry = config.Retry{Policy: "custom", Attempts: 5, Initial: time.Millisecond, Max: time.Millisecond}
	})
	run := engine.New(cfg, opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.payloads()); got != 50 {
		t.Fatalf("delivered %d of 50", got)
	}
	if c := tr.calls.Load(); c != 4 {
		t.Fatalf("%d transform calls, want 4 (1 + 3 retries of the whole batch)", c)
	}
	checkCounts(t, run.Stats())
}

// TestRetryAfterFanOutRetriesEachOutput: when a transform splits an event
// in two and the next transform fails both outputs retryably (a remote
// function answering 503), the retry runs both outputs again, and both are
// delivered once. The failures name only the input event (its Ref), and
// the retry took the first message of that event for each: the first
// output was delivered twice and the second was lost, the event counted
// delivered.
func TestRetryAfterFanOutRetriesEachOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		next component.Transform
	}{
		{"both outputs failed", &outage{down: 1}},
		{"the second output failed", &failOnce{payload: `"two"`}},
		// The retried first output must come back before the second, not
		// after it (the outputs were put back in order by event only).
		{"the first output failed", &failOnce{payload: `"one"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := `{"k":"plain","n":1}` + "\n" + `{"k":"split","n":2}` + "\n" + `{"k":"plain","n":3}` + "\n"
			src := stdin.New(io.NopCloser(strings.NewReader(in)), &stdin.Config{Format: "json", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
			sink := &memSink{}
			cfg := task(src, sink, func(c *config.Task) {
				c.Transforms = []config.Component{{Type: "flaky", Instance: &flaky{}}, {Type: "next", Instance: tc.next}}
				c.Retry = config.Retry{Policy: "custom", Attempts: 5, Initial: time.Millisecond, Max: time.Millisecond}
			})
			run := engine.New(cfg, opts(t))
			if err := run.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := sink.payloads()
			if len(got) != 4 || !strings.Contains(got[0], `"n":1`) || got[1] != `"one"` || got[2] != `"two"` || !strings.Contains(got[3], `"n":3`) {
				t.Fatalf("delivered %q, want the first event, the split one's two outputs in order, then the last", got)
			}
			if s := run.Stats(); s.Delivered != 3 || s.Out != 4 {
				t.Fatalf("stats %+v", s)
			}
			if f, ok := tc.next.(*failOnce); ok && f.seen.Load() != 5 {
				t.Fatalf("the transform was given %d messages, want 5: the 4 outputs of the split, and the failed one again", f.seen.Load())
			}
		})
	}
}

// failOnce fails the first message with payload retryably, once, and
// passes everything else on. It counts the messages it is given.
type failOnce struct {
	payload string
	done    atomic.Bool
	seen    atomic.Int64
}

func (f *failOnce) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	f.seen.Add(int64(len(in)))
	for i := range in {
		if string(in[i].Payload) == f.payload && f.done.CompareAndSwap(false, true) {
			out.Fail(&in[i], component.Retryable(errors.New("503 service unavailable"), 0))
			continue
		}
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

// namesAnother fails the second event retryably on the first call; on the
// retry (given only that event) it passes it and fails, by its Ref, the
// first event, which it was not given: a transform breaking the contract.
type namesAnother struct{ calls atomic.Int64 }

func (f *namesAnother) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	if f.calls.Add(1) == 1 {
		out.Emit(&in[0], in[0].Payload)
		out.Fail(&in[1], component.Retryable(errors.New("503 service unavailable"), 0))
		return nil
	}
	out.Emit(&in[0], in[0].Payload)
	out.Failures = append(out.Failures, component.Failure{Ref: 0, Err: component.Retryable(errors.New("stale"), 0)})
	return nil
}

// TestRetryFailureOfAnEventNotGivenFailsIt: a failure a retry call reports
// for an event it was not given fails that event, as on the first call:
// nothing can run it again. It was taken for a retry that matched no
// message, and the event counted as succeeded.
func TestRetryFailureOfAnEventNotGivenFailsIt(t *testing.T) {
	p := engine.NewProcessor(nil, []component.Transform{&namesAnother{}}, 1<<20,
		delivery.Policy{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond, Multiplier: 1})
	msgs := []message.Message{{Payload: []byte(`{"n":0}`), Ref: 0}, {Payload: []byte(`{"n":1}`), Ref: 1}}
	fates := make([]engine.Fate, 2)
	if _, err := p.Process(t.Context(), msgs, fates); err != nil {
		t.Fatal(err)
	}
	if !fates[0].Failed() || fates[1].Failed() {
		t.Fatalf("fates %+v: want event 0 failed (named by a call it was not in), event 1 through", fates)
	}
}
