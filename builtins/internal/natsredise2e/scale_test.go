package natsredise2e

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestNATSSharedDurable runs two processes on one durable: they share the
// messages (each delivers part of them), and together deliver every one.
// Each process stamps its outputs with its name (a fixed variable from the
// environment).
func TestNATSSharedDurable(t *testing.T) {
	const n = 6000
	nsrv, rsrv := natsLocal(t), redisLocal(t)
	stream := natstest.StreamName(t, "shared")
	subject := "sluice.e2e." + stream
	nsrv.Stream(t, stream, subject)
	out := rsrv.Key(t, "out")
	task := writeTask(t, fmt.Sprintf(`name = "shared-durable"
[source]
type = "nats"
url = %q
stream = %q
durable = "shared"
max_batch = 50
max_ack_pending = 200
[sink]
type = "redis"
url = %q
stream = %q
fields = { worker = "${worker}" }
variables = { worker = "${env:WORKER}" }
batch = { max_events = 50 }
`, nsrv.URL, stream, rsrv.URL, out))
	a := run(t, "worker a", []string{"WORKER=a"}, task)
	b := run(t, "worker b", []string{"WORKER=b"}, task)
	a.WaitLog(t, "task running")
	b.WaitLog(t, "task running")
	nsrv.Publish(t, subject, orders(0, n))
	testkit.WaitFor(t, "every message acknowledged", func() bool {
		ackPending, pending := nsrv.AckPending(t, stream, "shared")
		return a.Exited() || b.Exited() || ackPending == 0 && pending == 0
	})
	a.Stop(t)
	b.Stop(t)
	counts, byWorker := map[int]int{}, map[string]int{}
	for _, e := range rsrv.Entries(t, out) {
		counts[seqOf(t, valueOf(t, e.Values["payload"]))]++
		byWorker[e.Values["worker"]]++
	}
	dups := checkAll(t, counts, n, true)
	t.Logf("%d messages: worker a delivered %d, worker b %d (%d duplicates)", n, byWorker["a"], byWorker["b"], dups)
	if byWorker["a"] == 0 || byWorker["b"] == 0 {
		t.Fatalf("the two processes did not share the durable: %v", byWorker)
	}
}

// TestRedisSharedGroup runs two processes as two consumers of one group:
// they share the entries, and together deliver every one.
func TestRedisSharedGroup(t *testing.T) {
	const n = 6000
	nsrv, rsrv := natsLocal(t), redisLocal(t)
	in := rsrv.Key(t, "in")
	out := natstest.StreamName(t, "out")
	subject := "sluice.e2e." + out
	nsrv.Stream(t, out, subject)
	task := writeTask(t, fmt.Sprintf(`name = "shared-group"
[source]
type = "redis"
url = %q
stream = %q
group = "shared"
consumer = "${env:WORKER}"
max_batch = 50
[sink]
type = "nats"
url = %q
subject = %q
headers = { worker = "${worker}" }
variables = { worker = "${env:WORKER}" }
batch = { max_events = 50 }
`, rsrv.URL, in, nsrv.URL, subject))
	a := run(t, "worker a", []string{"WORKER=a"}, task)
	b := run(t, "worker b", []string{"WORKER=b"}, task)
	a.WaitLog(t, "task running")
	b.WaitLog(t, "task running")
	for from := 0; from < n; from += 500 {
		rsrv.Add(t, in, "payload", orders(from, from+500))
	}
	testkit.WaitFor(t, "every entry delivered and acknowledged", func() bool {
		return a.Exited() || b.Exited() || nsrv.StreamMsgs(t, out) >= n && rsrv.Pending(t, in, "shared") == 0
	})
	a.Stop(t)
	b.Stop(t)
	counts, byWorker := map[int]int{}, map[string]int{}
	for _, m := range nsrv.ReadAll(t, out) {
		counts[seqOf(t, redisPayload(t, m.Data))]++
		byWorker[nats.Header(m.Header).Get("worker")]++
	}
	dups := checkAll(t, counts, n, false)
	t.Logf("%d entries: consumer a delivered %d, consumer b %d (%d duplicates)", n, byWorker["a"], byWorker["b"], dups)
	if byWorker["a"] == 0 || byWorker["b"] == 0 {
		t.Fatalf("the two processes did not share the group: %v", byWorker)
	}
}
