package componenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// The conformance suites check the contract of runtime/component that every
// connector must keep, the way the standard library's slogtest and fstest
// check a handler or a file system: each connector's tests describe how to
// build it and how to reach the outside world it talks to, and the suite
// runs the same checks on all of them. A connector that does not run its
// suite is not done.

// SourceSuite describes a source to the conformance suite.
type SourceSuite struct {
	// New builds a source, not opened, that reads the test's stream. Every
	// call reads the same stream as the same reader (the same consumer
	// group, durable, slot or checkpoint), so a new source goes on from what
	// the last one committed.
	New func(t testing.TB) component.Source
	// Produce makes records with these bodies available in the stream, in
	// this order (publishes them, appends them, inserts rows). nil means the
	// source makes its own records (a generator): the read checks then take
	// Count records as they come, and Body is not used.
	Produce func(t testing.TB, bodies [][]byte)
	// Body returns, from a record the source emitted, the body Produce wrote
	// (for a source that wraps records in a CloudEvent, its data). nil means
	// the record is not one of the test's (a snapshot row, a heartbeat) and
	// is acknowledged and ignored.
	Body func(t testing.TB, m message.Message) []byte
	// Redelivers is true when records read but not acknowledged (nacked, or
	// never acked) before Close are read again by the next source: every
	// source that commits positions. HTTP ingest leaves that to its client.
	Redelivers bool
	// Ordered is true when records produced by one Produce call come out in
	// that order within their lane.
	Ordered bool
	// Finite is true when Read returns io.EOF once the stream is exhausted.
	Finite bool
	// Rereads is true when the source keeps no position: every new source
	// reads the stream from its start (a dead-letter replay). The commit
	// check then expects the old records again instead of refusing them.
	Rereads bool
	// Snapshot is true when the source reads only the records that exist
	// when it opens (a replay notes where the topic ends): the checks then
	// produce before opening the source.
	Snapshot bool
	// Count is how many records the read checks produce (default 40).
	Count int

	run string // this run of the suite, in the records' bodies
}

// produceAndOpen opens a source and produces bodies, in the order the
// source needs.
func produceAndOpen(t testing.TB, s SourceSuite, bodies [][]byte) component.Source {
	if s.Snapshot {
		s.Produce(t, bodies)
		return openSource(t, s)
	}
	src := openSource(t, s)
	s.Produce(t, bodies)
	return src
}

// Source runs the conformance checks on a source:
//   - Close without Open returns nil, and Open then Close works twice;
//   - every record produced is read, with a payload and a lane, none with
//     a decode error, in order per lane when Ordered;
//   - acknowledged records are committed by Close: the next source does not
//     read them again (with Rereads: it reads them again, and the new ones);
//   - without Produce (a generator), Count records are read, each with a
//     payload and a lane;
//   - with Redelivers, nacked and never-acked records are read again by the
//     next source;
//   - a Read blocked for want of records returns when its context ends, with
//     the context's error, and when the source is closed (and a Read after
//     Close returns an error at once).
func Source(t *testing.T, s SourceSuite) {
	if s.Count == 0 {
		s.Count = 40
	}
	s.run = fmt.Sprintf("%d-%d", time.Now().UnixNano(), runs.Add(1))
	t.Run("CloseWithoutOpen", func(t *testing.T) {
		src := s.New(t)
		if err := closeWithin(src); err != nil {
			t.Fatalf("Close without Open: %v", err)
		}
	})
	t.Run("OpenClose", func(t *testing.T) {
		for i := range 2 {
			src := s.New(t)
			if err := src.Open(ctxT(t)); err != nil {
				_ = closeWithin(src) // as the engine does: a failed Open may hold resources
				t.Fatalf("Open #%d: %v", i+1, err)
			}
			if err := closeWithin(src); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
	})
	if s.Produce == nil {
		t.Run("ReadGenerated", func(t *testing.T) {
			src := openSource(t, s)
			n := 0
			ctx := ctxT(t)
			for n < s.Count {
				b, err := src.Read(ctx)
				if err != nil {
					t.Fatalf("Read: %v after %d of %d records", err, n, s.Count)
				}
				checkBatch(t, b)
				n += len(b.Messages)
				ackAll(b)
			}
			if err := closeWithin(src); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	} else {
		sourceReadChecks(t, s)
	}
	t.Run("ContextEndsRead", func(t *testing.T) {
		src := openSource(t, s)
		drain(t, s, src)
		// Records may still trickle in after drain saw none for a moment:
		// a batch instead of the error is acknowledged and the Read tried
		// again, until one is blocked for want of records.
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithCancel(context.Background())
			res := readAsync(src, ctx)
			cancel()
			var r readResult
			select {
			case r = <-res:
			case <-time.After(testkit.Scale(testkit.DefaultWait)):
				t.Fatal("Read did not return after its context ended")
			}
			if r.err == nil {
				if attempt > 100 {
					t.Fatalf("Read keeps returning records after its context ended")
				}
				ackAll(r.b)
				continue
			}
			if !(s.Finite && errors.Is(r.err, io.EOF)) && !errors.Is(r.err, context.Canceled) {
				t.Fatalf("Read after its context ended: error %v; want context.Canceled", r.err)
			}
			break
		}
		if err := closeWithin(src); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("CloseUnblocksRead", func(t *testing.T) {
		src := openSource(t, s)
		drain(t, s, src)
		res := readAsync(src, context.Background())
		closed := make(chan error, 1)
		go func() { closed <- src.Close(context.Background()) }()
		select {
		case r := <-res:
			if r.err == nil && len(r.b.Messages) == 0 {
				t.Fatal("Read returned an empty batch without an error after Close")
			}
			if r.err == nil {
				// It raced with records coming in; the next Read must not
				// wait for more.
				ackAll(r.b)
				select {
				case r = <-readAsync(src, context.Background()):
					if r.err == nil {
						t.Fatalf("Read after Close returned %d records, want an error", len(r.b.Messages))
					}
				case <-time.After(testkit.Scale(testkit.DefaultWait)):
					t.Fatal("Read after Close did not return")
				}
			}
		case <-time.After(testkit.Scale(testkit.DefaultWait)):
			t.Fatal("Read did not return after Close")
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(testkit.Scale(testkit.DefaultWait)):
			t.Fatal("Close did not return")
		}
	})
}

// sourceReadChecks are the checks of records the test produced.
func sourceReadChecks(t *testing.T, s SourceSuite) {
	t.Run("ReadAckCommit", func(t *testing.T) {
		bodies := makeBodies(t, s, "read", s.Count)
		src := produceAndOpen(t, s, bodies)
		got := readBodies(t, s, src, bodies, ackAll)
		if s.Ordered {
			checkOrdered(t, got, bodies)
		}
		if err := closeWithin(src); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// The next source must not read what was acknowledged: produce a
		// marker and expect it before any of the old records. A source that
		// keeps no position reads them all again.
		marker := makeBodies(t, s, "marker", 1)
		src = produceAndOpen(t, s, marker)
		if s.Rereads {
			readBodies(t, s, src, append(bodies, marker...), ackAll)
		} else {
			readBodies(t, s, src, marker, ackAll)
		}
		if err := closeWithin(src); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	if s.Redelivers {
		t.Run("NackRedelivers", func(t *testing.T) {
			bodies := makeBodies(t, s, "nack", s.Count)
			src := produceAndOpen(t, s, bodies)
			// Nack every other batch and never ack the rest.
			n := 0
			readBodies(t, s, src, bodies, func(b component.Batch) {
				if n++; n%2 == 1 && b.Ack != nil {
					b.Ack(errors.New("conformance: nacked on purpose"))
				}
			})
			if err := closeWithin(src); err != nil {
				t.Fatalf("Close: %v", err)
			}
			src = openSource(t, s)
			got := readBodies(t, s, src, bodies, ackAll)
			if s.Ordered {
				checkOrdered(t, got, bodies)
			}
			if err := closeWithin(src); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

type readResult struct {
	b   component.Batch
	err error
}

func readAsync(src component.Source, ctx context.Context) <-chan readResult {
	res := make(chan readResult, 1)
	go func() {
		b, err := src.Read(ctx)
		res <- readResult{b, err}
	}()
	return res
}

func ackAll(b component.Batch) {
	if b.Ack != nil {
		b.Ack(nil)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	t.Cleanup(cancel)
	return ctx
}

func openSource(t testing.TB, s SourceSuite) component.Source {
	t.Helper()
	src := s.New(t)
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	if err := src.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return src
}

func closeWithin(c interface{ Close(context.Context) error }) error {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(testkit.Scale(testkit.DefaultWait) + time.Second):
		return errors.New("close did not return")
	}
}

// makeBodies returns n record bodies naming the test and the suite's run,
// so that records of an earlier run (-count, a shared server) are never
// taken for this run's.
func makeBodies(t testing.TB, s SourceSuite, kind string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"conformance":%q,"test":%q,"n":%d}`, kind, runName(t, s), i)
	}
	return out
}

func runName(t testing.TB, s SourceSuite) string { return t.Name() + "#" + s.run }

// runs numbers the suite's runs in this process.
var runs atomic.Int64

// readBodies reads until every body of want was seen at least once, handing
// each batch to settle, and returns the test's bodies by lane in read order.
// Records that are not the test's are acked at once.
func readBodies(t testing.TB, s SourceSuite, src component.Source, want [][]byte, settle func(component.Batch)) map[string][][]byte {
	t.Helper()
	missing := map[string]bool{}
	for _, b := range want {
		missing[string(b)] = true
	}
	known := map[string]bool{}
	for k := range missing {
		known[k] = true
	}
	lanes := map[string][][]byte{}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	for len(missing) > 0 {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v (%d of %d records still missing)", err, len(missing), len(want))
		}
		checkBatch(t, b)
		ours := false
		for _, m := range b.Messages {
			body := s.Body(t, m)
			if body == nil {
				continue
			}
			if !known[string(body)] {
				if bytes.Contains(body, []byte(`"conformance"`)) && bytes.Contains(body, []byte(fmt.Sprintf("%q", runName(t, s)))) {
					t.Fatalf("read a record of this test that was acknowledged before: %s", body)
				}
				continue
			}
			ours = true
			delete(missing, string(body))
			lanes[b.Lane] = append(lanes[b.Lane], body)
		}
		if ours {
			settle(b)
		} else {
			ackAll(b)
		}
	}
	return lanes
}

// drain reads and acks until the source has nothing more to give for a
// moment, so that a following Read blocks.
func drain(t testing.TB, s SourceSuite, src component.Source) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		b, err := src.Read(ctx)
		cancel()
		if err != nil {
			return
		}
		ackAll(b)
	}
}

func checkBatch(t testing.TB, b component.Batch) {
	t.Helper()
	if len(b.Messages) == 0 {
		t.Fatal("Read returned an empty batch without an error")
	}
	for i, m := range b.Messages {
		if m.Err != nil {
			t.Fatalf("record %d of lane %q: decode error %v", i, b.Lane, m.Err)
		}
		if len(m.Payload) == 0 {
			t.Fatalf("record %d of lane %q has no payload", i, b.Lane)
		}
	}
}

func checkOrdered(t testing.TB, lanes map[string][][]byte, want [][]byte) {
	t.Helper()
	pos := map[string]int{}
	for i, b := range want {
		pos[string(b)] = i
	}
	for lane, got := range lanes {
		for i := 1; i < len(got); i++ {
			if pos[string(got[i])] < pos[string(got[i-1])] {
				t.Fatalf("lane %q out of order: %s read after %s", lane, got[i], got[i-1])
			}
		}
	}
}

// SinkSuite describes a sink to the conformance suite.
type SinkSuite struct {
	// New builds a sink, not opened, that writes where Received looks.
	New func(t testing.TB) component.Sink
	// Received returns the payloads the outside world holds so far, in the
	// order it keeps them (consumed from the queue, selected from the table).
	Received func(t testing.TB) [][]byte
	// Payload returns the payload of record i of the test (default: a small
	// JSON object naming the test and i). A sink that writes rows needs the
	// fields its column mapping reads.
	Payload func(t testing.TB, i int) []byte
	// Same reports whether a received payload is the written one (default:
	// equal bytes, or equal JSON).
	Same func(written, received []byte) bool
	// Ordered is true when the outside world keeps the order of one Write.
	Ordered bool
	// Cut makes the service unreachable (testkit.Proxy.Cut) and Restore
	// brings it back; nil skips the outage check.
	Cut, Restore func()
	// Poison returns a payload the sink must reject as event-permanent (a
	// row violating a constraint, an unroutable message); nil skips it.
	Poison func(t testing.TB) []byte
	// Refused builds a sink, not opened, that the outside world refuses for
	// good (bad credentials, a missing table or topic): Open or the first
	// Write must fail as task-permanent, so the task stops instead of
	// retrying forever. nil skips the check.
	Refused func(t testing.TB) component.Sink
}

// Sink runs the conformance checks on a sink:
//   - Close without Open returns nil, and Open then Close works twice;
//   - what Write accepted is delivered, in order when Ordered, and Write
//     does not keep the caller's buffers (they are overwritten after it
//     returns);
//   - concurrent Writes all deliver;
//   - a Write whose context already ended returns promptly, and what it
//     reports delivered is delivered;
//   - with Cut/Restore, a Write to an unreachable service fails as
//     retryable within its context's deadline and a later Write succeeds
//     once the service is back;
//   - with Poison, a poison record is reported event-permanent, alone:
//     the other records of its batch are delivered;
//   - with Refused, a refused sink fails Open or its first Write as
//     task-permanent.
func Sink(t *testing.T, s SinkSuite) {
	if s.Payload == nil {
		// The run in the payload keeps an earlier run's records (-count, a
		// table or topic the test reuses) from passing for this run's.
		run := fmt.Sprintf("%d-%d", time.Now().UnixNano(), runs.Add(1))
		s.Payload = func(t testing.TB, i int) []byte {
			return fmt.Appendf(nil, `{"conformance":%q,"n":%d}`, t.Name()+"#"+run, i)
		}
	}
	if s.Same == nil {
		s.Same = SameJSON
	}
	t.Run("CloseWithoutOpen", func(t *testing.T) {
		if err := closeWithin(s.New(t)); err != nil {
			t.Fatalf("Close without Open: %v", err)
		}
	})
	t.Run("OpenClose", func(t *testing.T) {
		for i := range 2 {
			sk := s.New(t)
			if err := sk.Open(ctxT(t)); err != nil {
				_ = closeWithin(sk)
				t.Fatalf("Open #%d: %v", i+1, err)
			}
			if err := closeWithin(sk); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
	})
	t.Run("WriteDelivers", func(t *testing.T) {
		sk := openSink(t, s)
		var want [][]byte
		for b := range 3 {
			msgs, payloads := sinkBatch(t, s, b*10, 10)
			if err := sk.Write(ctxT(t), msgs); err != nil {
				t.Fatalf("Write batch %d: %v", b, err)
			}
			want = append(want, payloads...)
			for i := range msgs {
				// The sink must not hold on to the caller's buffers.
				for j := range msgs[i].Payload {
					msgs[i].Payload[j] = 'x'
				}
			}
		}
		waitReceived(t, s, want, s.Ordered)
		if err := closeWithin(sk); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("ConcurrentWrites", func(t *testing.T) {
		sk := openSink(t, s)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var want [][]byte
		errs := make(chan error, 4)
		for w := range 4 {
			msgs, payloads := sinkBatch(t, s, 1000+w*10, 10)
			mu.Lock()
			want = append(want, payloads...)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sk.Write(ctxT(t), msgs); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		waitReceived(t, s, want, false)
	})
	t.Run("CanceledContext", func(t *testing.T) {
		sk := openSink(t, s)
		msgs, payloads := sinkBatch(t, s, 2000, 3)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- sk.Write(ctx, msgs) }()
		select {
		case err := <-done:
			if err == nil {
				waitReceived(t, s, payloads, false)
			}
		case <-time.After(testkit.Scale(testkit.DefaultWait)):
			t.Fatal("Write with an ended context did not return")
		}
	})
	if s.Cut != nil && s.Restore != nil {
		t.Run("Outage", func(t *testing.T) {
			sk := openSink(t, s)
			s.Cut()
			restored := false
			defer func() {
				if !restored {
					s.Restore()
				}
			}()
			msgs, _ := sinkBatch(t, s, 3000, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := sk.Write(ctx, msgs)
			cancel()
			if err == nil {
				t.Fatal("Write to an unreachable service returned nil")
			}
			if c := component.ClassOf(err); c != component.ClassRetryable {
				t.Fatalf("Write to an unreachable service: class %s, want retryable: %v", c, err)
			}
			s.Restore()
			restored = true
			msgs, payloads := sinkBatch(t, s, 3100, 3)
			testkit.WaitFor(t, "a Write to succeed after the service came back", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return sk.Write(ctx, msgs) == nil
			})
			waitReceived(t, s, payloads, false)
		})
	}
	if s.Refused != nil {
		t.Run("RefusedIsTaskPermanent", func(t *testing.T) {
			sk := s.Refused(t)
			t.Cleanup(func() { _ = closeWithin(sk) })
			err := sk.Open(ctxT(t))
			if err == nil {
				msgs, _ := sinkBatch(t, s, 5000, 2)
				ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
				err = sk.Write(ctx, msgs)
				cancel()
			}
			if err == nil {
				t.Fatal("a refused sink opened and wrote without an error")
			}
			if c := component.ClassOf(err); c != component.ClassTaskPermanent {
				t.Fatalf("a refused sink failed with class %s, want task_permanent: %v", c, err)
			}
		})
	}
	if s.Poison != nil {
		t.Run("PoisonIsolated", func(t *testing.T) {
			sk := openSink(t, s)
			msgs, payloads := sinkBatch(t, s, 4000, 3)
			msgs[1].Payload = s.Poison(t)
			err := sk.Write(ctxT(t), msgs)
			if err == nil {
				t.Fatal("Write of a poison record returned nil")
			}
			var re *component.RecordErrors
			switch {
			case errors.As(err, &re):
				if len(re.Errs) != 1 || re.Errs[1] == nil {
					t.Fatalf("record errors %v, want only record 1", re.Errs)
				}
				if c := component.ClassOf(re.Errs[1]); c != component.ClassEventPermanent {
					t.Fatalf("poison record: class %s, want event_permanent: %v", c, re.Errs[1])
				}
				waitReceived(t, s, [][]byte{payloads[0], payloads[2]}, false)
			case component.ClassOf(err) == component.ClassEventPermanent:
				// The whole batch was refused: the engine splits it. Each
				// good record alone must then go through.
				for _, i := range []int{0, 2} {
					if err := sk.Write(ctxT(t), msgs[i:i+1]); err != nil {
						t.Fatalf("record %d alone: %v", i, err)
					}
				}
				if err := sk.Write(ctxT(t), msgs[1:2]); component.ClassOf(err) != component.ClassEventPermanent || err == nil {
					t.Fatalf("poison record alone: %v, want an event-permanent error", err)
				}
				waitReceived(t, s, [][]byte{payloads[0], payloads[2]}, false)
			default:
				t.Fatalf("Write of a poison record: class %s, want event_permanent or RecordErrors: %v", component.ClassOf(err), err)
			}
		})
	}
}

func openSink(t testing.TB, s SinkSuite) component.Sink {
	t.Helper()
	sk := s.New(t)
	t.Cleanup(func() { _ = sk.Close(context.Background()) })
	if err := sk.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return sk
}

// sinkBatch returns n messages for records from..from+n-1 and copies of
// their payloads. The event of each is a CloudEvent holding the payload, as
// a sink template reads it.
func sinkBatch(t testing.TB, s SinkSuite, from, n int) ([]message.Message, [][]byte) {
	msgs := make([]message.Message, n)
	want := make([][]byte, n)
	for i := range msgs {
		p := s.Payload(t, from+i)
		want[i] = slices.Clone(p)
		ev := fmt.Appendf(nil, `{"specversion":"1.0","id":"conformance-%d","source":"conformance","type":"test","data":%s}`, from+i, p)
		msgs[i] = message.Message{
			Payload: p,
			Event:   ev,
			Key:     fmt.Appendf(nil, "k%d", from+i),
			Time:    time.Now(),
			Pos:     message.Position{Stream: "conformance", Offset: int64(from + i)},
			Ref:     int32(i),
		}
	}
	return msgs, want
}

func waitReceived(t testing.TB, s SinkSuite, want [][]byte, ordered bool) {
	t.Helper()
	var last string
	ok := testkit.Eventually(testkit.DefaultWait, func() bool {
		got := s.Received(t)
		idx := make([]int, len(want))
		for i, w := range want {
			idx[i] = slices.IndexFunc(got, func(g []byte) bool { return s.Same(w, g) })
			if idx[i] < 0 {
				last = fmt.Sprintf("%s not received (%d payloads received)", w, len(got))
				return false
			}
			if ordered && i > 0 && idx[i] < idx[i-1] {
				last = fmt.Sprintf("%s received before %s", want[i], want[i-1])
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("waiting for the written payloads: %s", last)
	}
}

// SameJSON reports whether a and b are equal bytes or the same JSON value.
func SameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	return jsonEqual(a, b)
}

// TransformSuite describes a transform to the conformance suite.
type TransformSuite struct {
	// New builds the transform (opened by the suite when it is an Opener).
	New func(t testing.TB) component.Transform
	// Inputs are payloads the transform accepts (at least one).
	Inputs [][]byte
}

// Transform runs the conformance checks on a transform:
//   - Open and Close (when implemented) work, Close without Open too;
//   - an empty batch gives no output and no failure;
//   - every output and failure carries the Ref of an input, outputs keep
//     their input's original event and position and have no spare
//     capacity, and the inputs are not modified;
//   - the same batch gives the same outputs twice (an Output reused after
//     Reset), and concurrent Applies, as the engine's workers make, agree.
func Transform(t *testing.T, s TransformSuite) {
	if len(s.Inputs) == 0 {
		t.Fatal("TransformSuite needs Inputs")
	}
	t.Run("CloseWithoutOpen", func(t *testing.T) {
		if c, ok := s.New(t).(component.Closer); ok {
			if err := closeWithin(c); err != nil {
				t.Fatalf("Close without Open: %v", err)
			}
		}
	})
	t.Run("EmptyBatch", func(t *testing.T) {
		tr := openTransform(t, s)
		var out component.Output
		if err := tr.Apply(ctxT(t), nil, &out); err != nil {
			t.Fatalf("Apply(empty): %v", err)
		}
		if len(out.Messages)+len(out.Failures) != 0 {
			t.Fatalf("Apply(empty): %d outputs, %d failures", len(out.Messages), len(out.Failures))
		}
	})
	t.Run("RefsAndInputs", func(t *testing.T) {
		tr := openTransform(t, s)
		in := transformInputs(s)
		before := make([][]byte, len(in))
		for i := range in {
			before[i] = slices.Clone(in[i].Payload)
		}
		var out component.Output
		if err := tr.Apply(ctxT(t), in, &out); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		checkOutput(t, in, &out)
		for i := range in {
			if !bytes.Equal(in[i].Payload, before[i]) {
				t.Fatalf("input %d was modified: %q, was %q", i, in[i].Payload, before[i])
			}
		}
	})
	t.Run("Deterministic", func(t *testing.T) {
		tr := openTransform(t, s)
		var out component.Output
		first := applyPayloads(t, tr, s, &out)
		out.Reset()
		second := applyPayloads(t, tr, s, &out)
		if !slices.EqualFunc(first, second, bytes.Equal) {
			t.Fatalf("the same batch gave %q, then %q", first, second)
		}
	})
	t.Run("ConcurrentApply", func(t *testing.T) {
		tr := openTransform(t, s)
		var out component.Output
		want := applyPayloads(t, tr, s, &out)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					var o component.Output
					got := applyPayloads(t, tr, s, &o)
					if !slices.EqualFunc(got, want, bytes.Equal) {
						errs <- fmt.Errorf("worker %d got %q, want %q", w, got, want)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

func openTransform(t testing.TB, s TransformSuite) component.Transform {
	t.Helper()
	tr := s.New(t)
	if c, ok := tr.(component.Closer); ok {
		t.Cleanup(func() {
			if err := closeWithin(c); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	if o, ok := tr.(component.Opener); ok {
		if err := o.Open(ctxT(t)); err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	return tr
}

func transformInputs(s TransformSuite) []message.Message {
	in := make([]message.Message, len(s.Inputs))
	for i, p := range s.Inputs {
		// Without spare capacity, as sources hand payloads over: appending
		// to one must not write into another's bytes.
		p = slices.Clip(slices.Clone(p))
		in[i] = message.Message{Payload: p, Event: p, Key: fmt.Appendf(nil, "k%d", i), Ref: int32(i),
			Pos: message.Position{Stream: "conformance", Offset: int64(i)}}
	}
	return in
}

// applyPayloads applies the suite's inputs and returns the outputs'
// payloads (copied) followed by one line per failure.
func applyPayloads(t testing.TB, tr component.Transform, s TransformSuite, out *component.Output) [][]byte {
	in := transformInputs(s)
	if err := tr.Apply(context.Background(), in, out); err != nil {
		return [][]byte{fmt.Appendf(nil, "batch error: %v", err)}
	}
	var got [][]byte
	for _, m := range out.Messages {
		got = append(got, fmt.Appendf(nil, "%d:%s", m.Ref, m.Payload))
	}
	for _, f := range out.Failures {
		got = append(got, fmt.Appendf(nil, "%d failed: %v", f.Ref, f.Err))
	}
	return got
}

func checkOutput(t testing.TB, in []message.Message, out *component.Output) {
	t.Helper()
	last := int32(-1)
	for i, m := range out.Messages {
		if m.Ref < 0 || int(m.Ref) >= len(in) {
			t.Fatalf("output %d has Ref %d, outside the %d inputs", i, m.Ref, len(in))
		}
		if m.Ref < last {
			t.Fatalf("output %d (Ref %d) comes after an output of Ref %d: outputs must follow input order", i, m.Ref, last)
		}
		last = m.Ref
		// The original event and the position travel with the outputs:
		// dead-letter records and sink templates read them.
		if src := &in[m.Ref]; !bytes.Equal(m.Event, src.Event) || m.Pos != src.Pos {
			t.Fatalf("output %d lost its input's event or position: event %q at %v, input's %q at %v", i, m.Event, m.Pos, src.Event, src.Pos)
		}
		if cap(m.Payload) != len(m.Payload) {
			t.Fatalf("output %d has spare capacity: a consumer appending to it would overwrite other data", i)
		}
	}
	for i, f := range out.Failures {
		if f.Ref < 0 || int(f.Ref) >= len(in) {
			t.Fatalf("failure %d has Ref %d, outside the %d inputs", i, f.Ref, len(in))
		}
		if f.Err == nil {
			t.Fatalf("failure %d has no error", i)
		}
	}
}
