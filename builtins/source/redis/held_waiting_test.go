package redis

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestHeldEntriesNotClaimedWhileNextBatchWaits is
// TestHeldEntriesAreNotClaimed with a second entry in the stream: the
// engine holds the first batch (a sink being retried, max_in_flight
// reached) and does not Read the next one. The fetch loop then waits in
// waitRoom; it stopped marking the held entries in progress there, so
// another consumer of the group claimed them (and the queued one) while
// this live process still held them, and both delivered them (review).
func TestHeldEntriesNotClaimedWhileNextBatchWaits(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2")})
	const idle = "1500ms"
	a := open(t, fx.build(t, fx.srv.URL, "a", "max_batch = 1\nclaim_idle = \""+idle+"\"\nclaim_interval = \"1h\"\n"))
	b := read(t, a)
	other := open(t, fx.build(t, fx.srv.URL, "b", "claim_idle = \""+idle+"\"\nclaim_interval = \"50ms\"\n"))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	testkit.WaitFor(t, "three claim_idle periods to pass", func() bool {
		if ob, err := other.Read(ctx); err == nil {
			t.Fatalf("the other consumer claimed %d entries that consumer a held (after %v)", len(ob.Messages), time.Since(start).Round(100*time.Millisecond))
		}
		return time.Since(start) > 4500*time.Millisecond
	})
	b.Ack(nil)
}
