package kafka

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// An operator's rewind: to the earliest offsets the records are read again
// and that position is committed; to the latest, only new records come;
// to a time, the records from that time. Lag counts what is left to read.
func TestSeek(t *testing.T) {
	c := cluster(t, 1, "s")
	var recs []*kgo.Record
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "s", Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	produce(t, c.Addr(), recs...)
	group := uniq(t, "g")
	tree := baseTree(c, "s", group)
	tree["commit_interval"] = "100ms"
	s := newSource(t, testEnv(t), tree)
	ackAll := func(n int) []int64 {
		t.Helper()
		var offs []int64
		for _, b := range readBatches(t, s, n) {
			for _, m := range b.Messages {
				offs = append(offs, m.Pos.Offset)
			}
			b.Ack(nil)
		}
		return offs
	}
	if offs := ackAll(10); offs[0] != 0 || offs[9] != 9 {
		t.Fatalf("first read %v", offs)
	}
	if lag, ok := s.Lag(); !ok || lag != 0 {
		t.Fatalf("lag after reading everything: %d %v", lag, ok)
	}
	testkit.WaitFor(t, "offset 10 committed", func() bool { return committed(t, c.Addr(), group, "s")[0] == 10 })

	ctx := context.Background()
	if err := s.Seek(ctx, "earliest"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the rewind committed", func() bool { return committed(t, c.Addr(), group, "s")[0] == 0 })
	if offs := ackAll(10); offs[0] != 0 || len(offs) != 10 {
		t.Fatalf("after earliest: %v", offs)
	}

	at := base.Add(7 * time.Minute).UTC().Format(time.RFC3339Nano)
	if err := s.Seek(ctx, at); err != nil {
		t.Fatal(err)
	}
	if offs := ackAll(3); offs[0] != 7 || len(offs) != 3 {
		t.Fatalf("after %s: %v", at, offs)
	}

	if err := s.Seek(ctx, "latest"); err != nil {
		t.Fatal(err)
	}
	produce(t, c.Addr(), &kgo.Record{Topic: "s", Value: []byte("new")})
	if b := readBatches(t, s, 1); b[0].Messages[0].Pos.Offset != 10 {
		t.Fatalf("after latest: offset %d", b[0].Messages[0].Pos.Offset)
	}
}

// recordSink keeps the offsets of what it is given.
type recordSink struct {
	mu   sync.Mutex
	offs []int64
}

func (s *recordSink) Open(context.Context) error  { return nil }
func (s *recordSink) Close(context.Context) error { return nil }
func (s *recordSink) Write(_ context.Context, msgs []message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.offs = append(s.offs, m.Pos.Offset)
	}
	return nil
}

func (s *recordSink) got() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.offs)
}

// Through the engine, as the admin API does it: a running task whose source
// waits on an idle partition rewinds to the earliest offset and delivers
// the partition again, and the task's lag is the source's.
func TestSeekThroughTheEngine(t *testing.T) {
	c := cluster(t, 1, "e")
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "e", Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)
	s := newSource(t, testEnv(t), baseTree(c, "e", uniq(t, "g")))
	sink := &recordSink{}
	tk := engine.New(engine.Definition{Name: "k", Source: s, SourceType: "kafka", Sink: sink, SinkType: "test"},
		engine.Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testkit.WaitFor(t, "the partition delivered", func() bool { return len(sink.got()) == 10 })
	if lag, ok := tk.Lag(); !ok || lag != 0 {
		t.Fatalf("lag %d %v", lag, ok)
	}
	if err := tk.Seek(ctx, "earliest"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the partition delivered again", func() bool { return len(sink.got()) == 20 })
	if got := sink.got(); got[10] != 0 || got[19] != 9 {
		t.Fatalf("offsets %v", got)
	}
}
