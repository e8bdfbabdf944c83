package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// laneSource emits numbered events on several lanes and records acks: it
// plays a partitioned source (Kafka) whose commits the engine drives.
type laneSource struct {
	lanes, batches, perBatch int

	mu       sync.Mutex
	next     int
	acked    map[string][]int // batch numbers acked per lane, in ack order
	nacked   int
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	closed   atomic.Bool
}

func (s *laneSource) Open(context.Context) error { return nil }
func (s *laneSource) Close(context.Context) error {
	s.closed.Store(true)
	return nil
}

func (s *laneSource) Read(ctx context.Context) (component.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= s.batches {
		return component.Batch{}, io.EOF
	}
	n := s.next
	s.next++
	lane := fmt.Sprintf("lane-%d", n%s.lanes)
	msgs := make([]message.Message, s.perBatch)
	for i := range msgs {
		ev := fmt.Appendf(nil, `{"id":"%d-%d","data":{"lane":%q,"batch":%d,"i":%d}}`, n, i, lane, n, i)
		msgs[i] = message.Message{Payload: ev, Event: ev, Key: []byte(fmt.Sprint(i % 5)), Pos: message.Position{Stream: lane, Offset: int64(n)}}
	}
	if v := s.inFlight.Add(1); v > s.maxSeen.Load() {
		s.maxSeen.Store(v)
	}
	return component.Batch{Messages: msgs, Lane: lane, Ack: func(err error) {
		s.inFlight.Add(-1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.nacked++
			return
		}
		if s.acked == nil {
			s.acked = map[string][]int{}
		}
		s.acked[lane] = append(s.acked[lane], n)
	}}, nil
}

// memSink keeps what it is given, optionally slowly or failing.
type memSink struct {
	mu     sync.Mutex
	got    [][]byte
	delay  time.Duration
	block  chan struct{} // when set, Write waits on it (or ctx)
	reject func(payload []byte) error
}

func (s *memSink) Open(context.Context) error  { return nil }
func (s *memSink) Close(context.Context) error { return nil }
func (s *memSink) Write(ctx context.Context, msgs []message.Message) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.delay > 0 {
		time.Sleep(s.delay) // a slow sink, not synchronisation (and fake time in a synctest bubble)
	}
	var bad *component.RecordErrors
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range msgs {
		if s.reject != nil {
			if err := s.reject(msgs[i].Payload); err != nil {
				if bad == nil {
					bad = &component.RecordErrors{Errs: map[int]error{}}
				}
				bad.Errs[i] = err
				continue
			}
		}
		s.got = append(s.got, append([]byte(nil), msgs[i].Payload...))
	}
	if bad != nil {
		return bad
	}
	return nil
}

func (s *memSink) payloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.got))
	for i, g := range s.got {
		out[i] = string(g)
	}
	return out
}

// task defines a task around src and sink; mod edits it as a loaded task
// file would have it.
func task(src component.Source, sink component.Sink, mod func(*config.Task)) engine.Definition {
	t := &config.Task{
		Name:      "t",
		Source:    config.Component{Type: "test", Instance: src},
		Sink:      config.Component{Type: "test", Instance: sink},
		Tolerance: "all",
		Retry:     config.Retry{Policy: "none"},
		Engine:    config.Engine{Concurrency: 1, Order: "partition", MaxInFlight: 4, MaxEvents: 100, MaxEvent: 1 << 20},
	}
	if mod != nil {
		mod(t)
	}
	return runner.Definition(t)
}

// startHeld runs cfg with HoldBlocked (a blocked task waits for Resume,
// as the admin API makes it) until it ends, cancel is called or the test
// ends; done gets Run's error.
func startHeld(t *testing.T, cfg engine.Definition) (run *engine.Task, done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	o := opts(t)
	o.HoldBlocked = true
	run = engine.New(cfg, o)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(60*time.Second))
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() { ch <- run.Run(ctx) }()
	return run, ch, cancel
}

func opts(t *testing.T) engine.Options {
	return engine.Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(testLogLevel), ShutdownTimeout: 5 * time.Second}
}

func checkCounts(t *testing.T, s engine.Stats) {
	t.Helper()
	if s.Delivered+s.Filtered+s.DeadLettered+s.Dropped != s.In {
		t.Fatalf("counters do not add up: %+v", s)
	}
}

func TestStdinToStdout(t *testing.T) {
	var in bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&in, `{"n":%d}`+"\n", i)
	}
	in.WriteString("not json\n")
	var out bytes.Buffer
	src := stdin.New(io.NopCloser(&in), &stdin.Config{Format: "auto", BatchSize: 64, Source: "s", Type: "t"}, component.Env{MaxEvent: 1 << 20})
	run := engine.New(task(src, stdout.New(&out), nil), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1001 {
		t.Fatalf("got %d lines", len(lines))
	}
	for i, l := range lines[:1000] {
		var ev struct {
			ID   string          `json:"id"`
			Data struct{ N int } `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Data.N != i {
			t.Fatalf("line %d: %s (%v)", i, l, err)
		}
	}
	if !strings.Contains(lines[1000], `"data":"not json"`) {
		t.Fatalf("text line not wrapped: %s", lines[1000])
	}
	s := run.Stats()
	if s.In != 1001 || s.Delivered != 1001 || s.Out != 1001 || run.State() != engine.Stopped {
		t.Fatalf("stats %+v state %v", s, run.State())
	}
	checkCounts(t, s)
}

func TestAcksInOrderPerLaneWithConcurrency(t *testing.T) {
	for _, order := range []string{"partition", "key", "none"} {
		t.Run(order, func(t *testing.T) {
			src := &laneSource{lanes: 5, batches: 300, perBatch: 20}
			sink := &memSink{}
			cfg := task(src, sink, func(c *config.Task) {
				c.Engine.Concurrency, c.Engine.Order, c.Engine.MaxInFlight, c.Engine.MaxEvents = 4, order, 8, 50
			})
			run := engine.New(cfg, opts(t))
			if err := run.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			total := 0
			for lane, ns := range src.acked {
				total += len(ns)
				for i := 1; i < len(ns); i++ {
					if ns[i] <= ns[i-1] {
						t.Fatalf("lane %s acked out of read order: %v", lane, ns)
					}
				}
			}
			if total != 300 || src.nacked != 0 {
				t.Fatalf("acked %d nacked %d", total, src.nacked)
			}
			if m := src.maxSeen.Load(); m > 8 {
				t.Fatalf("%d batches in flight, max_in_flight is 8", m)
			}
			if order == "none" {
				return
			}
			// Order holds per lane (partition) or per key within a lane.
			last := map[string]int{}
			for _, p := range sink.payloads() {
				var ev struct {
					Data struct {
						Lane  string
						Batch int
						I     int
					}
				}
				json.Unmarshal([]byte(p), &ev)
				k := ev.Data.Lane
				if order == "key" {
					k += fmt.Sprint("/", ev.Data.I%5)
				}
				seq := ev.Data.Batch*1000 + ev.Data.I
				if prev, ok := last[k]; ok && seq < prev {
					t.Fatalf("order broken for %s: %d after %d", k, seq, prev)
				}
				last[k] = seq
			}
			checkCounts(t, run.Stats())
		})
	}
}

// endless emits batches until closed; used for shutdown tests.
type endless struct {
	n      atomic.Int64
	acked  atomic.Int64
	nacked atomic.Int64
}

func (s *endless) Open(context.Context) error  { return nil }
func (s *endless) Close(context.Context) error { return nil }
func (s *endless) Read(ctx context.Context) (component.Batch, error) {
	if err := ctx.Err(); err != nil {
		return component.Batch{}, err
	}
	n := s.n.Add(1)
	ev := fmt.Appendf(nil, `{"n":%d}`, n)
	return component.Batch{Messages: []message.Message{{Payload: ev, Event: ev}}, Lane: "x", Ack: func(err error) {
		if err != nil {
			s.nacked.Add(1)
		} else {
			s.acked.Add(1)
		}
	}}, nil
}

// TestShutdownDrainsWhatWasRead: on a stop every batch read is delivered
// and acknowledged before Run returns. In a synctest bubble the slow sink's
// delay and the 100ms of running are the bubble's clock: the same work on
// any machine.
func TestShutdownDrainsWhatWasRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &endless{}
		sink := &memSink{delay: 2 * time.Millisecond}
		run := engine.New(task(src, sink, nil), opts(t))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- run.Run(ctx) }()
		time.Sleep(100 * time.Millisecond) // the bubble's clock: 50 slow writes' worth on any machine
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		read := src.n.Load()
		if read < 10 || src.acked.Load() != read || src.nacked.Load() != 0 || int64(len(sink.payloads())) != read {
			t.Fatalf("read %d acked %d nacked %d delivered %d", read, src.acked.Load(), src.nacked.Load(), len(sink.payloads()))
		}
	})
}

// TestShutdownDeadlineNacks: a sink that never returns holds the stop for
// the shutdown timeout and no longer; what it held is nacked, never acked.
// The bubble's clock measures the wait exactly.
func TestShutdownDeadlineNacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &endless{}
		sink := &memSink{block: make(chan struct{})}
		o := opts(t)
		o.ShutdownTimeout = 200 * time.Millisecond
		run := engine.New(task(src, sink, nil), o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- run.Run(ctx) }()
		synctest.Wait() // the sink holds a write; the reader filled its in-flight slots
		cancel()
		start := time.Now()
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "shutdown deadline") {
			t.Fatalf("want a shutdown deadline error, got %v", err)
		}
		if el := time.Since(start); el < o.ShutdownTimeout || el > o.ShutdownTimeout+time.Second {
			t.Fatalf("gave up after %v, want the shutdown timeout of %v", el, o.ShutdownTimeout)
		}
		if src.acked.Load() != 0 || src.nacked.Load() == 0 {
			t.Fatalf("acked %d nacked %d: nothing undelivered may be acked", src.acked.Load(), src.nacked.Load())
		}
	})
}

func TestFailuresGoToTheDeadLetterQueue(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(`{"n":1}` + "\n" + `{"n":2,"poison":true}` + "\nnot json\n" + `{"n":4}` + "\n")
	src := stdin.New(io.NopCloser(&in), &stdin.Config{Format: "json", BatchSize: 64, Source: "s", Type: "t"}, component.Env{MaxEvent: 1 << 20})
	sink := &memSink{reject: func(p []byte) error {
		if bytes.Contains(p, []byte("poison")) {
			return component.EventPermanent(errors.New("422 unprocessable"))
		}
		return nil
	}}
	dlq := &memSink{}
	cfg := task(src, sink, func(c *config.Task) {
		c.DeadLetter = &config.Component{Type: "test", Instance: dlq}
	})
	run := engine.New(cfg, opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := dlq.payloads()
	if len(got) != 2 {
		t.Fatalf("dead letters: %q", got)
	}
	var rec struct {
		Event    json.RawMessage
		Task     string
		Stage    string
		Error    struct{ Class, Message string }
		Attempts int
		Position struct {
			Stream string
			Offset int64
		}
	}
	// Dead letters come in input order.
	json.Unmarshal([]byte(got[0]), &rec)
	if rec.Stage != "sink" || rec.Error.Class != "event_permanent" || !strings.Contains(string(rec.Event), `"poison":true`) || rec.Attempts != 1 || rec.Task != "t" {
		t.Fatalf("sink record: %s", got[0])
	}
	json.Unmarshal([]byte(got[1]), &rec)
	if rec.Stage != "decode" || rec.Error.Class != "decode" || string(rec.Event) != `"not json"` || rec.Position.Offset != 30 {
		t.Fatalf("decode record: %s", got[1])
	}
	s := run.Stats()
	if s.Delivered != 2 || s.DeadLettered != 2 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, s)
}

func TestToleranceNoneBlocks(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 10, perBatch: 5}
	sink := &memSink{reject: func(p []byte) error {
		if bytes.Contains(p, []byte(`"batch":3,"i":2`)) {
			return component.EventPermanent(errors.New("rejected"))
		}
		return nil
	}}
	cfg := task(src, sink, func(c *config.Task) { c.Tolerance = "none"; c.Engine.MaxEvents = 5 })
	run := engine.New(cfg, opts(t))
	err := run.Run(context.Background())
	if !errors.Is(err, engine.ErrBlocked) || run.State() != engine.Blocked {
		t.Fatalf("err %v state %v", err, run.State())
	}
	// Batches before the failing one are committed, the failing one and
	// everything after it in the lane are not.
	if got := src.acked["lane-0"]; len(got) != 3 || got[2] != 2 {
		t.Fatalf("acked %v", got)
	}
	if !strings.Contains(run.Reason().Error(), "rejected") {
		t.Fatalf("reason %v", run.Reason())
	}
}

var testLogLevel = zerolog.WarnLevel
