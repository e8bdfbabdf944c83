package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// seekable plays a log of n events: it reads them in order, then waits
// for more (an idle Kafka partition) until ctx ends; Seek moves its cursor.
type seekable struct {
	n   int
	bad bool // every tenth event (i%10 == 3) holds "bad": the flaky transform fails it

	mu    sync.Mutex
	next  int
	seeks []string
}

func (s *seekable) Open(context.Context) error  { return nil }
func (s *seekable) Close(context.Context) error { return nil }
func (s *seekable) Read(ctx context.Context) (component.Batch, error) {
	s.mu.Lock()
	if s.next < s.n {
		i := s.next
		s.next++
		s.mu.Unlock()
		ev := fmt.Appendf(nil, `{"data":{"i":%d}}`, i)
		if s.bad && i%10 == 3 {
			ev = fmt.Appendf(nil, `{"data":{"i":%d,"bad":true}}`, i)
		}
		return component.Batch{Messages: []message.Message{{Payload: ev, Event: ev}}, Lane: "p"}, nil
	}
	s.mu.Unlock()
	<-ctx.Done()
	return component.Batch{}, ctx.Err()
}

func (s *seekable) Seek(_ context.Context, to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeks = append(s.seeks, to)
	switch to {
	case "earliest":
		s.next = 0
	case "latest":
		s.next = s.n
	default:
		return errors.New("no times in this log")
	}
	return nil
}

// A rewind interrupts the read of an idle source, waits for what is under
// way, seeks, and reading goes on from there: the log is delivered again.
// A paused task rewinds too, and stays paused.
func TestSeekRewindsAnIdleSource(t *testing.T) {
	src := &seekable{n: 5}
	sink := &memSink{}
	tk := engine.New(task(src, sink, nil), opts(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testkit.WaitFor(t, "the log delivered", func() bool { return len(sink.payloads()) == 5 })
	if err := tk.Seek(ctx, "earliest"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the log delivered again", func() bool { return len(sink.payloads()) == 10 })
	if got := sink.payloads(); got[5] != `{"data":{"i":0}}` {
		t.Fatalf("after the rewind: %v", got)
	}

	tk.Pause()
	if err := tk.Seek(ctx, "earliest"); err != nil {
		t.Fatal(err)
	}
	if tk.State() != engine.Paused || len(sink.payloads()) != 10 {
		t.Fatalf("a paused task rewound: state %v, %d delivered", tk.State(), len(sink.payloads()))
	}
	tk.Resume()
	testkit.WaitFor(t, "the log delivered a third time", func() bool { return len(sink.payloads()) == 15 })

	if err := tk.Seek(ctx, "2026-01-01T00:00:00Z"); err == nil || !strings.Contains(err.Error(), "no times") {
		t.Fatalf("a seek the source refuses: %v", err)
	}
	st := tk.Stats()
	checkCounts(t, st)
	if st.In != 15 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSeekRefusals(t *testing.T) {
	tk := engine.New(task(&endless{}, &memSink{}, nil), opts(t))
	if err := tk.Seek(context.Background(), "earliest"); !errors.Is(err, engine.ErrCannotSeek) {
		t.Fatalf("a source without Seek: %v", err)
	}
	tk = engine.New(task(&seekable{n: 1}, &memSink{}, nil), opts(t))
	if err := tk.Seek(context.Background(), "earliest"); !errors.Is(err, engine.ErrCannotSeek) || !strings.Contains(err.Error(), "Starting") {
		t.Fatalf("a task not running: %v", err)
	}
	for _, bad := range []string{"", "now", "2026-13-01"} {
		if _, err := engine.ParseSeek(bad); err == nil {
			t.Errorf("ParseSeek(%q) passed", bad)
		}
	}
	if to, err := engine.ParseSeek("2026-12-06T11:00:00+01:00"); err != nil || to != "2026-12-06T10:00:00Z" {
		t.Fatalf("ParseSeek: %q %v", to, err)
	}
}

// Stage counts follow each event, and a tap sees what leaves its stage.
func TestStagesAndTaps(t *testing.T) {
	src := &seekable{n: 40, bad: true}
	sink := &memSink{}
	def := task(src, sink, func(c *config.Task) {
		c.Transforms = []config.Component{{Type: "flaky", Instance: &flaky{}}}
	})
	tk := engine.New(def, opts(t))
	recs, stop, err := tk.Tap("transform[0]")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	rec := <-recs
	if rec.Stage != "transform[0]" || !strings.Contains(string(rec.Event), `"i":`) {
		t.Fatalf("tap record %+v %s", rec, rec.Event)
	}
	testkit.WaitFor(t, "every event settled", func() bool {
		s := tk.Stats()
		return s.Delivered+s.DeadLettered+s.Dropped+s.Filtered == 40
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := tk.Stages()
	ids := []string{"source", "filter", "transform[0]", "sink"}
	for i, s := range st {
		if s.ID != ids[i] {
			t.Fatalf("stages %+v", st)
		}
	}
	s := tk.Stats()
	if st[0].In != 40 || st[1].Out != 40 || st[2].In != 40 || st[2].Type != "flaky" {
		t.Fatalf("stages %+v", st)
	}
	if st[2].Failed != s.DeadLettered+s.Dropped || st[2].Failed != 4 || st[2].Out != 36 || st[3].Out != s.Out || st[3].In != 36 {
		t.Fatalf("stages %+v stats %+v", st, s)
	}
	if errs := tk.Errors(); s.Dropped != 4 || len(errs) != 4 || errs[0].Stage != "transform[0]" || !strings.Contains(errs[0].Message, "refused") {
		t.Fatalf("4 events fail at the transform: stats %+v, errors %+v", s, errs)
	}
	if rate, hist := tk.Rate(); rate != 0 || len(hist) == 0 || hist[len(hist)-1] != 0 {
		t.Fatalf("a stopped task's rate: %v %v", rate, hist)
	}
	if _, _, err := tk.Tap("transform[1]"); !errors.Is(err, engine.ErrNoStage) {
		t.Fatalf("tap on a stage the task lacks: %v", err)
	}
}

// Taps come and go while events flow, from many goroutines: nothing races,
// nothing blocks, and every event is delivered whatever the taps do.
func TestTapsComeAndGo(t *testing.T) {
	src := &seekable{n: 3000}
	sink := &memSink{}
	tk := engine.New(task(src, sink, func(c *config.Task) { c.Engine.Concurrency = 2 }), opts(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stages := []string{"source", "filter", "sink"}
			for i := range 50 {
				recs, stop, err := tk.Tap(stages[(g+i)%3])
				if errors.Is(err, engine.ErrTooManyTaps) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					select { // read one if there is one; never wait
					case <-recs:
					default:
					}
				}
				stop()
				stop() // twice is harmless
			}
		}()
	}
	wg.Wait()
	testkit.WaitFor(t, "every event delivered", func() bool { return len(sink.payloads()) == 3000 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A tap belongs to one run of its task: when the run ends (the source
// finished, or a reload stops the task to start a new run), the tap's
// channel closes, so a reader learns that no record will come; a tap
// attached to a task whose run ended is closed at once. Nothing closed
// them: `sluice tap` and the console waited forever on a stopped run,
// holding one of its 4 tap slots (found in review).
func TestTapsEndWithTheRun(t *testing.T) {
	src := &seekable{n: 10}
	sink := &memSink{}
	tk := engine.New(task(src, sink, nil), opts(t))
	var taps []<-chan engine.TapRecord
	for range engine.MaxTaps {
		recs, stop, err := tk.Tap("sink")
		if err != nil {
			t.Fatal(err)
		}
		defer stop() // after the run closed it: harmless
		taps = append(taps, recs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	testkit.WaitFor(t, "the events delivered", func() bool { return len(sink.payloads()) == 10 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, recs := range taps {
		for range recs { // records sampled before the end, then the close
		}
	}
	recs, stop, err := tk.Tap("sink")
	if err != nil {
		t.Fatalf("a tap on an ended run: %v, want a closed tap (the run's taps no longer count)", err)
	}
	defer stop()
	if _, ok := <-recs; ok {
		t.Fatal("a tap on an ended run gave a record")
	}
}
