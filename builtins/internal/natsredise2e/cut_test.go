package natsredise2e

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// retryForOutages keeps records through an outage of a few seconds and
// stops the task rather than lose one: the tests check that none is lost.
const retryForOutages = `
[retry]
policy = "custom"
attempts = 200
initial = "200ms"
max = "1s"
[errors]
tolerance = "none"
`

// TestNATSConnectionCut cuts the connection between a running sluice and
// NATS (both its source and its sink go through a TCP proxy) in the middle
// of the stream, restores it, and checks that every message reaches the
// output exactly once.
func TestNATSConnectionCut(t *testing.T) {
	const n = 8000
	srv := natsLocal(t)
	proxy := testkit.NewProxy(t, srv.Addr)
	in, out := natstest.StreamName(t, "in"), natstest.StreamName(t, "out")
	inSubj, outSubj := "sluice.e2e."+in, "sluice.e2e."+out
	srv.Stream(t, in, inSubj)
	srv.Stream(t, out, outSubj)
	url := "nats://" + proxy.Addr()
	task := writeTask(t, fmt.Sprintf(`name = "nats-cut"
[source]
type = "nats"
url = %q
stream = %q
durable = "cut"
reconnect_wait = "100ms"
ack_wait = "3s"
max_batch = 100
[sink]
type = "nats"
url = %q
subject = %q
reconnect_wait = "100ms"
ack_timeout = "2s"
batch = { max_events = 100 }
%s`, url, in, url, outSubj, retryForOutages))
	srv.Publish(t, inSubj, orders(0, n/2))
	p := run(t, "sluice", nil, task)
	testkit.WaitFor(t, "part of the stream in the output", func() bool { return p.Exited() || srv.StreamMsgs(t, out) >= n/8 })
	proxy.Cut()
	p.WaitLog(t, "connection lost")
	srv.Publish(t, inSubj, orders(n/2, n)) // arrives while Sluice is cut off
	at := srv.StreamMsgs(t, out)
	proxy.Restore()
	p.WaitLog(t, "reconnected")
	testkit.WaitFor(t, "every message acknowledged", func() bool {
		ackPending, pending := srv.AckPending(t, in, "cut")
		return p.Exited() || ackPending == 0 && pending == 0 && srv.StreamMsgs(t, out) >= n
	})
	p.Stop(t)
	counts := map[int]int{}
	for _, m := range srv.ReadAll(t, out) {
		counts[seqOf(t, valueOf(t, string(m.Data)))]++
	}
	checkAll(t, counts, n, false)
	t.Logf("%d messages, connection cut at %d: none missing, no duplicate", n, at)
}

// TestRedisConnectionCut cuts the connection between a running sluice and
// Redis (source and sink through a TCP proxy) mid-stream, restores it, and
// checks that every entry reaches the output.
func TestRedisConnectionCut(t *testing.T) {
	const n = 8000
	srv := redisLocal(t)
	proxy := testkit.NewProxy(t, srv.Addr)
	in, out := srv.Key(t, "in"), srv.Key(t, "out")
	url := redistest.URLVia(srv.URL, proxy.Addr())
	task := writeTask(t, fmt.Sprintf(`name = "redis-cut"
[source]
type = "redis"
url = %q
stream = %q
group = "cut"
consumer = "c1"
max_batch = 100
block = "200ms"
[sink]
type = "redis"
url = %q
stream = %q
batch = { max_events = 100 }
%s`, url, in, url, out, retryForOutages))
	srv.Add(t, in, "payload", orders(0, n/2))
	outLen := func() int64 { return srv.Int(t, "XLEN", out) }
	p := run(t, "sluice", nil, task)
	testkit.WaitFor(t, "part of the stream in the output", func() bool { return p.Exited() || outLen() >= n/8 })
	proxy.Cut()
	// Whichever notices first: the source's next read, or the sink's write
	// (the source may be waiting for the engine, which retries the sink).
	testkit.WaitFor(t, "sluice to notice the cut", func() bool {
		return p.Exited() || p.LogHas("read failed") || p.LogHas("delivery failed; retrying")
	})
	srv.Add(t, in, "payload", orders(n/2, n))
	at := outLen()
	proxy.Restore()
	if p.LogHas("read failed") {
		p.WaitLog(t, "reading again")
	}
	testkit.WaitFor(t, "every entry delivered and acknowledged", func() bool {
		if p.Exited() {
			return true
		}
		g, err := srv.Groups(in)
		return err == nil && len(g) > 0 && g[0].Pending == 0 && g[0].Lag == 0 && outLen() >= n
	})
	p.Stop(t)
	counts := map[int]int{}
	for _, e := range srv.Entries(t, out) {
		counts[seqOf(t, redisPayload(t, []byte(e.Values["payload"])))]++
	}
	dups := checkAll(t, counts, n, true)
	t.Logf("%d entries, connection cut at %d: none missing, %d duplicates", n, at, dups)
}
