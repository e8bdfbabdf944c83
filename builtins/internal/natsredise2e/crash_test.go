package natsredise2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

const kills = 4

// TestNATSKillNine kills a running sluice (NATS JetStream → JetStream)
// with SIGKILL several times while input keeps arriving, restarts it each
// time, and checks that every input message reaches the output stream
// exactly once: what a killed process published and had not acknowledged
// is delivered again after ack_wait and published again with the same
// Nats-Msg-Id, which the output stream's duplicate window drops.
func TestNATSKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const n = 20_000
	srv := natsLocal(t)
	in, out := natstest.StreamName(t, "in"), natstest.StreamName(t, "out")
	inSubj, outSubj := "sluice.e2e."+in, "sluice.e2e."+out
	srv.Stream(t, in, inSubj)
	_, err := srv.JS.CreateStream(natstest.Ctx(t), jetstream.StreamConfig{Name: out, Subjects: []string{outSubj}, Duplicates: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv.DeleteAtEnd(t, out)
	task := writeTask(t, fmt.Sprintf(`name = "nats-k9"
max_in_flight = 8
[source]
type = "nats"
url = %q
stream = %q
durable = "k9"
ack_wait = "2s"
max_ack_pending = 2000
max_batch = 250
[sink]
type = "nats"
url = %q
subject = %q
stream = %q
batch = { max_events = 250 }
`, srv.URL, in, srv.URL, outSubj, out))
	lp := startLoader(n, 500, func(from, to int) error {
		futs := make([]jetstream.PubAckFuture, 0, to-from)
		for i := from; i < to; i++ {
			f, err := srv.JS.PublishAsync(inSubj, order(i))
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			}
		}
		return nil
	})
	for i := range kills {
		p := run(t, fmt.Sprintf("sluice run %d", i+1), nil, task)
		before := srv.StreamMsgs(t, out)
		// Kill once it has published some more: some runs die right after
		// their first batches, some later, all in the middle of the load.
		step := uint64(300 + 700*i)
		testkit.WaitFor(t, "the run to publish", func() bool { return p.Exited() || srv.StreamMsgs(t, out) >= before+step })
		p.Kill()
		t.Logf("run %d killed; output %d -> %d messages", i+1, before, srv.StreamMsgs(t, out))
	}
	lp.wait(t)
	admin := testkit.FreeAddr(t)
	p := run(t, "final run", []string{"SLUICE_ADMIN_ADDR=" + admin}, task)
	testkit.WaitFor(t, "every input message acknowledged", func() bool {
		ackPending, pending := srv.AckPending(t, in, "k9")
		return p.Exited() || ackPending == 0 && pending == 0 && srv.StreamMsgs(t, out) >= n
	})
	t.Logf("final run: %v messages read again after the last kill, %v of them dropped by the output stream as duplicates",
		metric(t, admin, "sluice_nats_consumer_redelivered_total"), metric(t, admin, "sluice_nats_publish_duplicates_total"))
	p.Stop(t)
	counts := map[int]int{}
	for _, m := range srv.ReadAll(t, out) {
		var ev struct {
			Data struct{ Value json.RawMessage }
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		counts[seqOf(t, ev.Data.Value)]++
	}
	checkAll(t, counts, n, false)
	t.Logf("%d messages through %d kills: none missing, no duplicate", n, kills)
}

// TestRedisKillNine kills a running sluice (Redis stream → Redis stream)
// with SIGKILL several times while entries keep arriving, and checks that
// every entry reaches the output: a restarted consumer first reads again
// the entries it had not acknowledged. Duplicates are bounded by what one
// process holds unacknowledged (max_in_flight × max_batch) per crash.
func TestRedisKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const n, maxInFlight, maxBatch = 20_000, 8, 250
	srv := redisLocal(t)
	in, out := srv.Key(t, "in"), srv.Key(t, "out")
	task := writeTask(t, fmt.Sprintf(`name = "redis-k9"
max_in_flight = %d
[source]
type = "redis"
url = %q
stream = %q
group = "k9"
consumer = "worker"
max_batch = %d
[sink]
type = "redis"
url = %q
stream = %q
batch = { max_events = 250 }
`, maxInFlight, srv.URL, in, maxBatch, srv.URL, out))
	lp := startLoader(n, 500, func(from, to int) error {
		bodies := make([][]byte, 0, to-from)
		for i := from; i < to; i++ {
			bodies = append(bodies, order(i))
		}
		return srv.AddErr(in, "payload", bodies)
	})
	outLen := func() int64 { return srv.Int(t, "XLEN", out) }
	for i := range kills {
		p := run(t, fmt.Sprintf("sluice run %d", i+1), nil, task)
		before := outLen()
		step := int64(300 + 700*i)
		testkit.WaitFor(t, "the run to write", func() bool { return p.Exited() || outLen() >= before+step })
		p.Kill()
		t.Logf("run %d killed; output %d -> %d entries", i+1, before, outLen())
	}
	lp.wait(t)
	p := run(t, "final run", nil, task)
	testkit.WaitFor(t, "every input entry acknowledged", func() bool {
		if p.Exited() {
			return true
		}
		info, err := srv.Groups(in)
		return err == nil && len(info) == 1 && info[0].Pending == 0 && info[0].LastDeliveredID == srv.LastID(t, in)
	})
	p.Stop(t)
	counts := map[int]int{}
	for _, e := range srv.Entries(t, out) {
		// No transform: the output is the source's event.
		var ev struct {
			Data struct {
				Fields struct{ Payload json.RawMessage }
			}
		}
		if err := json.Unmarshal([]byte(e.Values["payload"]), &ev); err != nil {
			t.Fatal(err)
		}
		counts[seqOf(t, ev.Data.Fields.Payload)]++
	}
	dups := checkAll(t, counts, n, true)
	t.Logf("%d entries through %d kills: none missing, %d duplicates (bound %d per crash)", n, kills, dups, maxInFlight*maxBatch)
	if dups > kills*maxInFlight*maxBatch {
		t.Fatalf("%d duplicates after %d crashes; the documented bound is %d per crash", dups, kills, maxInFlight*maxBatch)
	}
}
