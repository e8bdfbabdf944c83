package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// cycleSource plays a transactional source (Kafka exactly-once): it reads
// records 0..n-1 in batches of per, ends a cycle every cycleLen batches or
// once idle, and on an aborted cycle goes back to the last committed record.
// Once it has handed out everything it returns empty batches, as a source
// waiting for records does when its cycle is due.
type cycleSource struct {
	n, per, cycleLen int

	mu        sync.Mutex
	next      int // next record to read
	committed int // records committed
	inCycle   int // batches read in the open cycle
	idle      bool
	ends      []bool
	idleEnds  int // cycles ended while the source had nothing to read
	nacks     int
	endErr    error // when set, EndCycle fails with it; nothing is read again
}

func (s *cycleSource) Open(context.Context) error  { return nil }
func (s *cycleSource) Close(context.Context) error { return nil }

func (s *cycleSource) Read(ctx context.Context) (component.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= s.n {
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond): // a source's poll for new records, not synchronisation
		}
		s.mu.Lock()
		s.idle = true
		return component.Batch{}, ctx.Err()
	}
	from := s.next
	to := min(from+s.per, s.n)
	s.next = to
	s.inCycle++
	msgs := make([]message.Message, 0, to-from)
	for i := from; i < to; i++ {
		ev := fmt.Appendf(nil, `{"i":%d}`, i)
		msgs = append(msgs, message.Message{Payload: ev, Event: ev, Pos: message.Position{Stream: "p", Offset: int64(i)}})
	}
	return component.Batch{Messages: msgs, Lane: "p", Ack: func(err error) {
		if err != nil {
			s.mu.Lock()
			s.nacks++
			s.mu.Unlock()
		}
	}}, nil
}

func (s *cycleSource) CycleDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inCycle >= s.cycleLen || s.inCycle > 0 && s.idle
}

func (s *cycleSource) EndCycle(_ context.Context, commit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inCycle == 0 {
		return nil
	}
	s.ends = append(s.ends, commit)
	if s.next >= s.n {
		s.idleEnds++
	}
	s.inCycle, s.idle = 0, false
	if s.endErr != nil {
		return s.endErr
	}
	if commit {
		s.committed = s.next
	} else {
		s.next = s.committed
	}
	return nil
}

func (s *cycleSource) state() (committed int, ends []bool, nacks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed, append([]bool(nil), s.ends...), s.nacks
}

// TestCycleEndsWhileIdle: the last cycle of a burst commits while the source
// waits for more records (through the empty batches it returns), not only
// when the task stops.
func TestCycleEndsWhileIdle(t *testing.T) {
	src := &cycleSource{n: 25, per: 10, cycleLen: 2}
	sink := &memSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := engine.New(task(src, sink, func(c *config.Task) { c.ExactlyOnce = true }), opts(t))
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "every record committed while the task runs", func() bool {
		c, _, _ := src.state()
		return c == 25
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, ends, _ := src.state()
	for i, c := range ends {
		if !c {
			t.Fatalf("cycle %d aborted: %v", i, ends)
		}
	}
	if len(sink.payloads()) != 25 {
		t.Fatalf("delivered %d, want 25", len(sink.payloads()))
	}
}

// TestFencedCycleEndStopsTheTask: a cycle's end fails with a
// task-permanent error (a Kafka producer fenced by another process with
// the same transactional_id). The task stops in StartFailed with that
// reason at once, also when nothing more arrives to read: left Running
// until its next cycle began, an idle fenced process kept its partitions
// in the group and no other member ever got them.
func TestFencedCycleEndStopsTheTask(t *testing.T) {
	fenced := component.TaskPermanent(errors.New(`producer fenced: another process uses transactional_id "orders-1"`))
	src := &cycleSource{n: 10, per: 10, cycleLen: 1, endErr: fenced}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := engine.New(task(src, &memSink{}, func(c *config.Task) { c.ExactlyOnce = true }), opts(t))
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "the fenced task to stop", func() bool { return run.State() == engine.StartFailed })
	if reason := fmt.Sprint(run.Reason()); !strings.Contains(reason, `transactional_id "orders-1"`) {
		t.Errorf("reason %q, want the fence naming the transactional_id", reason)
	}
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrStartFailed) {
			t.Fatalf("Run returned %v, want ErrStartFailed", err)
		}
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		t.Fatal("Run did not return after the fence")
	}
}

// flakySink fails its first failN writes with a retryable error, as a
// producer does when the brokers go away in the middle of a transaction.
type flakySink struct {
	memSink
	mu    sync.Mutex
	failN int
}

func (s *flakySink) Write(ctx context.Context, msgs []message.Message) error {
	s.mu.Lock()
	fail := s.failN > 0
	if fail {
		s.failN--
	}
	s.mu.Unlock()
	if fail {
		return component.Retryable(errors.New("brokers unreachable"), 0)
	}
	return s.memSink.Write(ctx, msgs)
}

// TestCycleAbortsOnRetryableSinkFailure: in an exactly-once cycle a sink
// failure that retries did not fix neither goes to the dead-letter queue
// nor stops the task: the cycle aborts, the source goes back to its last
// commit and every record is delivered in a later cycle.
func TestCycleAbortsOnRetryableSinkFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  int
		dlqOK bool
	}{
		{"sink fails", 1, true},
		{"sink and dead-letter queue fail", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &cycleSource{n: 40, per: 10, cycleLen: 2}
			sink := &flakySink{failN: tc.fail}
			dlq := &flakySink{failN: 1}
			if !tc.dlqOK {
				// The sink rejects one record for good; the dead-letter
				// queue then fails retryably once.
				sink.reject = func(p []byte) error {
					if string(p) == `{"i":15}` {
						return component.EventPermanent(errors.New("rejected"))
					}
					return nil
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			run := engine.New(task(src, sink, func(c *config.Task) {
				c.ExactlyOnce = true
				c.DeadLetter = &config.Component{Type: "test", Instance: dlq}
			}), opts(t))
			done := make(chan error, 1)
			go func() { done <- run.Run(ctx) }()
			testkit.WaitFor(t, "every record committed", func() bool {
				c, _, _ := src.state()
				return c == 40
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("task ended with %v, want a normal end", err)
			}
			_, ends, nacks := src.state()
			aborted := 0
			for _, c := range ends {
				if !c {
					aborted++
				}
			}
			if aborted != 1 || nacks == 0 {
				t.Fatalf("cycles %v (nacks %d): want exactly one aborted", ends, nacks)
			}
			seen := map[string]int{}
			for _, p := range sink.payloads() {
				seen[p]++
			}
			want := 40
			if !tc.dlqOK {
				want = 39
				if got := dlq.payloads(); len(got) != 1 || !strings.Contains(got[0], `"event":{"i":15}`) {
					t.Fatalf("dead-letter queue got %q, want the rejected record once", got)
				}
			} else if got := dlq.payloads(); len(got) != 0 {
				t.Fatalf("dead-letter queue got %q; a retryable failure must abort, not dead-letter", got)
			}
			if len(seen) != want {
				t.Fatalf("sink got %d distinct records, want %d", len(seen), want)
			}
			if s := run.Stats(); s.DeadLettered > 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// gatedSink takes records until it holds limit of them, then holds the next
// write until the limit is raised: in a synctest bubble the engine runs up
// to that point and goes quiet, so synctest.Wait returns and the test looks
// at a settled state.
type gatedSink struct {
	memSink
	gate   sync.Mutex
	held   int
	limit  int
	raised chan struct{}
}

func newGatedSink(limit int) *gatedSink {
	return &gatedSink{limit: limit, raised: make(chan struct{})}
}

func (s *gatedSink) Write(ctx context.Context, msgs []message.Message) error {
	for {
		s.gate.Lock()
		open, raised := s.held < s.limit, s.raised
		if open {
			s.held += len(msgs)
		}
		s.gate.Unlock()
		if open {
			return s.memSink.Write(ctx, msgs)
		}
		select {
		case <-raised:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *gatedSink) setLimit(n int) {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.limit = n
	close(s.raised)
	s.raised = make(chan struct{})
}

// TestPausedTaskEndsItsCycle: pausing a task commits its open cycle instead
// of leaving the transaction open while nothing is read, and a paused task
// then does nothing, however long it stays paused. The bubble's clock makes
// "however long" an hour that takes no time, and synctest.Wait makes
// "nothing more happens" exact rather than a guess.
func TestPausedTaskEndsItsCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &cycleSource{n: 1 << 30, per: 5, cycleLen: 1 << 30}
		sink := newGatedSink(50)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		run := engine.New(task(src, sink, func(c *config.Task) { c.ExactlyOnce = true }), opts(t))
		done := make(chan error, 1)
		go func() { done <- run.Run(ctx) }()
		synctest.Wait() // the sink took 50 records and holds the next write
		run.Pause()
		sink.setLimit(math.MaxInt)
		synctest.Wait() // what was in flight is delivered; the paused task ended its cycle
		committed, ends, _ := src.state()
		if len(ends) != 1 || !ends[0] || committed < 50 {
			t.Fatalf("after the pause: committed %d, cycles %v; want one committed cycle of at least 50", committed, ends)
		}
		if n := len(sink.payloads()); n != committed {
			t.Fatalf("delivered %d, committed %d", n, committed)
		}
		time.Sleep(time.Hour) // the bubble's clock: passes once every goroutine waits
		synctest.Wait()
		if c, ends, _ := src.state(); c != committed || len(ends) != 1 || len(sink.payloads()) != committed {
			t.Fatalf("a paused task went on: committed %d -> %d, cycles %v, delivered %d", committed, c, ends, len(sink.payloads()))
		}
		sink.setLimit(committed + 20)
		run.Resume()
		synctest.Wait()
		if n := len(sink.payloads()); n < committed+20 {
			t.Fatalf("resumed, yet delivered %d, want at least %d", n, committed+20)
		}
		sink.setLimit(math.MaxInt)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
