package kafka

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
)

// TestSeekDuringCommitKeepsRewind: a periodic commit that is on the wire
// while an operator rewinds (Seek to earliest) completes after the rewind:
// the rewound position is still what the group ends up committed at
// ("commits that position, so that a restart resumes from there too"). It
// stayed at the old offset, so a restart skipped the rewound records
// (review). The test plays the committer's two rounds itself (the round in
// flight, then the one Seek's kick asks for), so that the interleaving is
// fixed.
func TestSeekDuringCommitKeepsRewind(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Addr: "127.0.0.1:0", Brokers: 2, Partitions: 1, Topics: []string{"s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	// A group whose coordinator is not the partition's leader: the held
	// OffsetCommit must not hold Seek's ListOffsets (same connection).
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	md, err := adm.Metadata(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	leader := md.Topics["s"].Partitions[0].Leader
	group := ""
	for i := 0; i < 100 && group == ""; i++ {
		g := uniq(t, "g") + strconv.Itoa(i)
		co := adm.FindGroupCoordinators(ctx, g)
		if co[g].NodeID != leader && co[g].Err == nil {
			group = g
		}
	}
	if group == "" {
		t.Fatal("no group with a coordinator other than the leader")
	}

	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "s", Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)

	tree := baseTree(c, "s", group)
	tree["commit_interval"] = "1h"
	s := newSource(t, testEnv(t), tree)
	// The test is the committer.
	s.stop()
	<-s.stopped

	for _, b := range readBatches(t, s, 10) {
		b.Ack(nil)
	}

	held := make(chan struct{})
	release := make(chan struct{})
	var once atomic.Bool
	c.Kfake().ControlKey(kmsg.OffsetCommit.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake().KeepControl()
		if once.CompareAndSwap(false, true) {
			close(held)
			c.Kfake().SleepControl(func() { <-release })
		}
		return nil, nil, false
	})

	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	// The periodic round: it takes offset 10 and is on the wire.
	first := make(chan error, 1)
	go func() { first <- s.commit(context.Background(), cl, nil, "periodic") }()
	<-held

	if err := s.Seek(ctx, "earliest"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The round Seek's kick asks for.
	commitRound(t, s)

	if got := committed(t, c.Addr(), group, "s")[0]; got != 0 {
		t.Fatalf("after a rewind to earliest the group is committed at %d, want 0: a restart would skip the rewound records", got)
	}
}
