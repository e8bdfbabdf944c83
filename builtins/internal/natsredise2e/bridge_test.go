package natsredise2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestNATSToRedisBridge runs the NATS → Redis bridge of the docs,
// testdata/pipelines/nats-to-redis.toml: orders published on JetStream
// subjects are filtered (EU, amount over 100, with items), reshaped by a
// template and stored as one hash per order with a TTL. Every expected
// order is checked field by field, and nothing else is there.
func TestNATSToRedisBridge(t *testing.T) {
	const n = 400
	nsrv, rsrv := natsLocal(t), redisLocal(t)
	stream := natstest.StreamName(t, "bridge")
	subject := "sluice.e2e." + stream
	nsrv.Stream(t, stream, subject+".>")
	for i := range n {
		nsrv.Publish(t, subject+"."+orderOf(i).Region, [][]byte{order(i)})
	}
	prefix := rsrv.Key(t, "order")
	task := example("nats-to-redis.toml")
	env := []string{"NATS_URL=" + nsrv.URL, "NATS_STREAM=" + stream, "NATS_SUBJECT=" + subject, "REDIS_URL=" + rsrv.URL, "REDIS_PREFIX=" + prefix}
	want := map[string]orderFields{}
	for i := range n {
		o := orderOf(i)
		if strings.HasPrefix(o.Region, "eu-") && o.Amount > 100 && o.Items > 0 {
			want[o.OrderID] = o
		}
	}
	if len(want) < 30 || len(want) > n/2 {
		t.Fatalf("the input matches %d records; the test wants a real filter", len(want))
	}
	p := run(t, "sluice", env, task)
	testkit.WaitFor(t, "every expected order in Redis", func() bool {
		return len(rsrv.Keys(t, prefix+":*")) >= len(want) || p.Exited()
	})
	testkit.WaitFor(t, "the durable to have every message acknowledged", func() bool {
		ackPending, pending := nsrv.AckPending(t, stream, "orders-to-redis")
		return ackPending == 0 && pending == 0
	})
	p.Stop(t)
	keys := rsrv.Keys(t, prefix+":*")
	if len(keys) != len(want) {
		t.Fatalf("Redis holds %d orders, want %d", len(keys), len(want))
	}
	for id, o := range want {
		key := prefix + ":" + id
		h := rsrv.HGetAll(t, key)
		seq, _ := strconv.ParseUint(h["id"][strings.LastIndexByte(h["id"], '-')+1:], 10, 64)
		exp := map[string]string{
			"id": fmt.Sprintf("%s-0-%d", stream, seq), "seq": strconv.Itoa(o.Seq), "order": o.OrderID,
			"amount": strconv.Itoa(o.Amount), "region": o.Region, "subject": subject + "." + o.Region,
		}
		if fmt.Sprint(h) != fmt.Sprint(exp) || seq != uint64(o.Seq+1) {
			t.Fatalf("%s:\n got %v\nwant %v (stream sequence %d)", key, h, exp, o.Seq+1)
		}
		if ttl := rsrv.Int(t, "PTTL", key); ttl <= 0 {
			t.Fatalf("%s has TTL %d ms, want about 1h", key, ttl)
		}
	}
	t.Logf("bridge: %d orders published, %d passed the filter, %d hashes in Redis", n, len(want), len(keys))
}
