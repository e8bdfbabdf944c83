package kafka

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRevokeCommitNeverOvertakenByOlderCommit: a periodic commit that has
// taken its offsets but not sent them yet when the partition is revoked
// must not land after the revoke's commit of newer offsets. The two ran
// side by side, and the older commit, reaching franz-go last, moved the
// group back: the partition's new owner (or a restart) read the records
// in between again although they were delivered. The test plays the
// committer itself and holds its round between taking and sending the
// offsets, so that the interleaving is fixed.
func TestRevokeCommitNeverOvertakenByOlderCommit(t *testing.T) {
	c := cluster(t, 1, "o")
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "o", Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)
	group := uniq(t, "g")
	tree := baseTree(c, "o", group)
	tree["max_poll_records"] = int64(5)
	tree["commit_interval"] = "1h"
	s := newSource(t, testEnv(t), tree)
	// The test is the committer.
	s.stop()
	<-s.stopped

	bs := readBatches(t, s, 10)
	if len(bs) != 2 {
		t.Fatalf("want 2 batches of 5 records, got %d", len(bs))
	}
	bs[0].Ack(nil)

	taken := make(chan struct{})
	release := make(chan struct{})
	s.beforeSend = func(why string) {
		if why == "periodic" {
			close(taken)
			<-release
		}
	}
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	// The periodic round takes offset 5 and waits before sending it.
	periodic := make(chan error, 1)
	go func() { periodic <- s.commit(context.Background(), cl, nil, "periodic") }()
	<-taken

	// The rest is delivered, and the partition is revoked: its commit
	// takes offset 10.
	bs[1].Ack(nil)
	revoked := make(chan struct{})
	go func() {
		defer close(revoked)
		s.onRevoked(context.Background(), cl, map[string][]int32{"o": {0}})
	}()
	// Let the periodic round go once the revoke committed, or waits for it.
	testkit.WaitFor(t, "the revoke to commit or to wait for the periodic commit", func() bool {
		select {
		case <-revoked:
			return true
		default:
			return revokeWaitsForCommit()
		}
	})
	close(release)
	if err := <-periodic; err != nil {
		t.Fatal(err)
	}
	<-revoked

	if got := committed(t, c.Addr(), group, "o")[0]; got != 10 {
		t.Fatalf("the group is committed at %d, want 10: the periodic commit of offset 5 landed after the revoke's commit of 10, so 5 delivered records are read again", got)
	}
}

// revokeWaitsForCommit reports whether a goroutine in onRevoked waits for
// the lock that orders commits.
func revokeWaitsForCommit() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if !strings.Contains(g, "(*Source).onRevoked(") {
			continue
		}
		lines := strings.Split(g, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "sync.(*Mutex).Lock(") {
				for _, next := range lines[i+1:] {
					if strings.HasPrefix(next, "\t") {
						continue
					}
					return strings.Contains(next, "(*Source).commit(")
				}
			}
		}
	}
	return false
}
