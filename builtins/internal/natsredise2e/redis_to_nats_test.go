package natsredise2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRedisToNATS runs testdata/pipelines/redis-to-nats.toml: it reads
// orders from a Redis stream, filters and reshapes them, and publishes them
// into a JetStream stream (created by Sluice) by region. Each output
// is checked: its body, subject, headers and Nats-Msg-Id (the event id and
// a payload hash).
func TestRedisToNATS(t *testing.T) {
	const n = 400
	nsrv, rsrv := natsLocal(t), redisLocal(t)
	in := rsrv.Key(t, "orders")
	rsrv.Add(t, in, "payload", orders(0, n))
	out := natstest.StreamName(t, "out")
	subject := "sluice.e2e." + out
	nsrv.DeleteAtEnd(t, out) // Sluice creates it
	task := example("redis-to-nats.toml")
	env := []string{"REDIS_URL=" + rsrv.URL, "REDIS_STREAM=" + in, "NATS_URL=" + nsrv.URL, "NATS_STREAM=" + out, "NATS_SUBJECT=" + subject}
	want := map[int]orderFields{}
	for i := range n {
		if o := orderOf(i); strings.HasPrefix(o.Region, "eu-") && o.Amount > 100 {
			want[i] = o
		}
	}
	p := run(t, "sluice", env, task)
	p.WaitLog(t, "created the JetStream stream")
	testkit.WaitFor(t, "every expected order in the output stream", func() bool {
		return nsrv.StreamMsgs(t, out) >= uint64(len(want)) || p.Exited()
	})
	testkit.WaitFor(t, "the group to have acknowledged every entry", func() bool { return rsrv.Pending(t, in, "orders-to-nats") == 0 })
	p.Stop(t)
	msgs := nsrv.ReadAll(t, out)
	if len(msgs) != len(want) {
		t.Fatalf("output holds %d messages, want %d", len(msgs), len(want))
	}
	ids := map[string]bool{}
	msgID := regexp.MustCompile(`^` + regexp.QuoteMeta(in) + `-\d+-\d+:[0-9a-f]{16}$`)
	for _, m := range msgs {
		var v struct {
			ID     string
			Seq    int
			Order  string
			Amount int
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("output %s: %v", m.Data, err)
		}
		o, ok := want[v.Seq]
		if !ok {
			t.Fatalf("order %d in the output: it does not pass the filter", v.Seq)
		}
		delete(want, v.Seq)
		if v.Order != o.OrderID || v.Amount != o.Amount || !strings.HasPrefix(v.ID, in+"-") {
			t.Fatalf("output %s for order %+v", m.Data, o)
		}
		if m.Subject != subject+"."+o.Region {
			t.Fatalf("order %d published to %q", v.Seq, m.Subject)
		}
		if m.Header.Get("order") != o.OrderID {
			t.Fatalf("order %d headers %v", v.Seq, m.Header)
		}
		id := m.Header.Get("Nats-Msg-Id")
		if !msgID.MatchString(id) || !strings.HasPrefix(id, v.ID+":") || ids[id] {
			t.Fatalf("order %d Nats-Msg-Id %q (event id %s)", v.Seq, id, v.ID)
		}
		ids[id] = true
	}
}
