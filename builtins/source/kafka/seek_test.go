package kafka

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
		for _, b := range readBatches(t, s, n, 10*time.Second) {
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
	if b := readBatches(t, s, 1, 10*time.Second); b[0].Messages[0].Pos.Offset != 10 {
		t.Fatalf("after latest: offset %d", b[0].Messages[0].Pos.Offset)
	}
}
