package kafkae2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Settings shared by the at-least-once tasks below: the duplicates window
// a crash may cause is 2 x max_in_flight x max_poll_records records per
// process (docs/kafka.md).
const (
	maxInFlight    = 4
	maxPollRecords = 100
	window         = 2 * maxInFlight * maxPollRecords
)

// k2kTask is a Kafka-to-Kafka task whose output records carry the input's
// event id and seq. extra goes at the end of [source].
func k2kTask(addr, group, extra string) string {
	return fmt.Sprintf(`name = "k2k"
max_in_flight = %[3]d
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = %[2]q
offset = "earliest"
concurrency = 2
max_poll_records = %[4]d
heartbeat_interval = "250ms"
session_timeout = "6s"
rebalance_timeout = "8s"
revoke_timeout = "3s"
commit_interval = "1s"
fetch_max_wait = "100ms"
%[5]s
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.value.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
headers = { worker = "${env:WORKER:-}" }
batch = { max_events = 100 }
`, addr, group, maxInFlight, maxPollRecords, extra)
}

// TestStartOffsets: a new group starts at the earliest record, at the
// latest (only what is produced once it joined) or at a time (the first
// record at or after it), three tasks in one process.
func TestStartOffsets(t *testing.T) {
	c := startCluster(t, 2, "in", "out-earliest", "out-time", "out-latest")
	cl := newClient(t, c.Addr())
	ctx := context.Background()
	jan := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	jun := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 20 {
		ts := jan.Add(time.Duration(i) * time.Second)
		if i >= 10 {
			ts = jun.Add(time.Duration(i) * time.Second)
		}
		recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: order(i), Timestamp: ts})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ name, offset string }{{"earliest", "earliest"}, {"time", "2024-03-01T00:00:00Z"}, {"latest", "latest"}} {
		task := fmt.Sprintf(`name = "start-%[2]s"
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "g-%[2]s"
offset = %[3]q
heartbeat_interval = "250ms"
fetch_max_wait = "100ms"
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.value.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out-%[2]s"
`, c.Addr(), tc.name, tc.offset)
		path := fmt.Sprintf("%s/%s.toml", dir, tc.name)
		writeFile(t, path, task)
	}
	p := startSluice(t, "sluice", nil, dir)
	// A group starting at "latest" takes the end of each partition at some
	// moment after it joined, which nothing outside the process sees: send
	// records one at a time until one comes out of it. It must start past
	// the first 20 and miss nothing after its first.
	latest := newClient(t, c.Addr(), kgo.ConsumeTopics("out-latest"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next, first := 20, -1
	testkit.WaitFor(t, "the latest-offset group to pass a record on", func() bool {
		rec := &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", next), Value: order(next), Timestamp: time.Now()}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		next++
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		latest.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var o outRecord
			if err := json.Unmarshal(r.Value, &o); err == nil && (first < 0 || o.Seq < first) {
				first = o.Seq
			}
		})
		return first >= 0
	})
	// A few more once it runs.
	recs = recs[:0]
	for i := next; i < next+5; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: order(i), Timestamp: time.Now()})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	total := next + 5
	if first < 20 {
		t.Fatalf("the latest-offset group passed on record %d, produced before it joined", first)
	}
	for _, tc := range []struct {
		topic    string
		from, to int
	}{{"out-earliest", 0, total}, {"out-time", 10, total}, {"out-latest", first, total}} {
		counts, got := tally(t, c.Addr(), tc.topic, tc.to-tc.from, false, 20*time.Second)
		for seq := range total {
			want := 0
			if seq >= tc.from && seq < tc.to {
				want = 1
			}
			if counts[seq] != want {
				t.Errorf("%s: record %d arrived %d times, want %d (output: %d records)", tc.topic, seq, counts[seq], want, got)
			}
		}
	}
	p.Stop(t)
}

// skipShort skips the multi-second process tests under -short.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sluice processes for several seconds; skipped with -short")
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFilterTransformToKafka: a filter (pattern and condition), a template
// transform and a Kafka sink with a key template and headers, checked
// record by record: exactly the matching records arrive, each once, with
// the expected value, key, headers and timestamp, in order per key.
func TestFilterTransformToKafka(t *testing.T) {
	const n = 400
	c := startCluster(t, 3, "in", "out")
	lp := produceLoad(t, c.Addr(), "in", 0, n, 100_000)
	lp.wait(t)
	task := writeTask(t, fmt.Sprintf(`name = "eu-big"
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
offset = "earliest"
concurrency = 3
heartbeat_interval = "250ms"
fetch_max_wait = "100ms"
[filter]
condition = 'data.value.items > 0'
[filter.pattern.data.value]
region = [{ prefix = "eu-" }]
amount = [{ numeric = [">", 100] }]
[[transform]]
type = "template"
variables = { order = "$.data.value.order_id", amount = "$.data.value.amount", region = "$.data.value.region", id = "$.id", seq = "$.data.value.seq" }
template = '{"id":"${id}","seq":${seq},"order":"${order}","amount":${amount},"region":"${region}"}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
key = "${order}"
headers = { region = "${region}", via = "sluice" }
variables = { order = "$.data.value.order_id", region = "$.data.value.region" }
batch = { max_events = 50 }
`, c.Addr()))
	want := map[int]string{}
	for i := range n {
		var v struct {
			Region string
			Amount int
			Items  int
		}
		_ = json.Unmarshal(order(i), &v)
		if strings.HasPrefix(v.Region, "eu-") && v.Amount > 100 && v.Items > 0 {
			want[i] = fmt.Sprintf(`{"id":"%%s","seq":%d,"order":"o-%d","amount":%d,"region":"%s"}`, i, i, v.Amount, v.Region)
		}
	}
	if len(want) < 50 || len(want) > n/2 {
		t.Fatalf("the input matches %d records; the test wants a real filter", len(want))
	}
	p := startSluice(t, "sluice", nil, task)
	cl := newClient(t, c.Addr(), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	testkit.WaitFor(t, "the matching records in the output", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got = append(got, cl.PollFetches(ctx).Records()...)
		cancel()
		return len(got) >= len(want)
	})
	p.Stop(t)
	// A repeat would be in the topic by now that the process stopped.
	if inTopic := topicRecords(t, c.Addr(), "out"); inTopic != int64(len(want)) {
		t.Fatalf("output topic holds %d records, want %d", inTopic, len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("output holds %d records, want %d", len(got), len(want))
	}
	seen := map[int]bool{}
	lastOffset := map[string]int64{} // per key: the input offsets must grow
	for _, r := range got {
		var o struct {
			ID  string
			Seq int
		}
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		tmpl, ok := want[o.Seq]
		if !ok || seen[o.Seq] {
			t.Fatalf("record %d in the output: filtered out or repeated", o.Seq)
		}
		seen[o.Seq] = true
		if exp := fmt.Sprintf(tmpl, o.ID); string(r.Value) != exp {
			t.Fatalf("value\n got %s\nwant %s", r.Value, exp)
		}
		if string(r.Key) != fmt.Sprintf("o-%d", o.Seq) {
			t.Fatalf("record %d keyed %q", o.Seq, r.Key)
		}
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		var v struct{ Region string }
		_ = json.Unmarshal(order(o.Seq), &v)
		if h["region"] != v.Region || h["via"] != "sluice" {
			t.Fatalf("record %d headers %v", o.Seq, h)
		}
		if r.Timestamp.Year() < 2024 {
			t.Fatalf("record %d timestamp %v: want the source record's", o.Seq, r.Timestamp)
		}
		// The id is <topic>-<partition>-<offset> of the input record.
		var part, off int64
		if _, err := fmt.Sscanf(o.ID, "in-%d-%d", &part, &off); err != nil {
			t.Fatalf("record %d id %q", o.Seq, o.ID)
		}
		k := fmt.Sprintf("%d/%s", part, r.Key)
		if prev, ok := lastOffset[k]; ok && off <= prev {
			t.Fatalf("key %s out of order: offset %d after %d", k, off, prev)
		}
		lastOffset[k] = off
	}
}

// TestKillNineAndRestart kills a running sluice with SIGKILL at random
// moments while records keep arriving, restarts it each time, and checks
// that every input record reaches the output, with at most the documented
// window of duplicates per crash.
func TestKillNineAndRestart(t *testing.T) {
	skipShort(t)
	const n, kills = 24_000, 4
	c := startCluster(t, 4, "in", "out")
	task := writeTask(t, k2kTask(c.Addr(), "k9", `instance_id = "k9-1"`))
	lp := produceLoad(t, c.Addr(), "in", 0, n, 5_000)
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for i := range kills {
		p := startSluice(t, fmt.Sprintf("sluice run %d", i+1), nil, task)
		before := committedTotal(t, c.Addr(), "k9")
		// Let it work a random while: some runs die before their first
		// commit, some after several. Not synchronisation: the moment of
		// the crash is meant to be random.
		time.Sleep(time.Duration(300+rnd.IntN(1200)) * time.Millisecond)
		p.Kill()
		t.Logf("run %d killed; group committed %d -> %d records", i+1, before, committedTotal(t, c.Addr(), "k9"))
	}
	lp.wait(t)
	p := startSluice(t, "final run", nil, task)
	testkit.WaitFor(t, "every input record committed", func() bool { return alive(t, p) && committedTotal(t, c.Addr(), "k9") == n })
	p.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n, false, 30*time.Second)
	dups := checkAll(t, counts, total, n)
	t.Logf("%d records, %d duplicates after %d crashes (window %d per crash)", n, dups, kills, window)
	if dups > kills*window {
		t.Fatalf("%d duplicates after %d crashes; the documented bound is %d per crash", dups, kills, window)
	}
}

// TestScaleOutAndStop runs two processes in one group: they share the
// partitions; stopping one (SIGTERM) mid-stream hands its partitions to the
// other, with nothing lost and no more duplicates than the window.
func TestScaleOutAndStop(t *testing.T) {
	skipShort(t)
	c := startCluster(t, 4, "in", "out")
	task := writeTask(t, k2kTask(c.Addr(), "scale", ""))
	out := watchOut(t, c.Addr())
	lp := produceUntil(t, c.Addr(), "in", 0, 200_000, 5_000)
	a := startSluice(t, "worker a", []string{"WORKER=a"}, task)
	b := startSluice(t, "worker b", []string{"WORKER=b"}, task)
	testkit.WaitFor(t, "both processes in the group", func() bool { return groupMembers(t, c.Addr(), "scale") == 2 })
	testkit.WaitFor(t, "both processes producing", func() bool { return out.wrote("a") > 0 && out.wrote("b") > 0 })
	a.Stop(t)
	n := lp.until(t)
	testkit.WaitFor(t, "every input record committed", func() bool { return committedTotal(t, c.Addr(), "scale") == int64(n) })
	b.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n, false, 30*time.Second)
	dups := checkAll(t, counts, total, n)
	w := out.all(t, c.Addr())
	t.Logf("%d records, %d duplicates; written by a: %d, b: %d", n, dups, w["a"], w["b"])
	if dups > window {
		t.Fatalf("%d duplicates after a graceful stop; the bound is %d", dups, window)
	}
}

// TestRebalanceDuringLoad: members join and leave the group while records
// flow (three rebalances); every record arrives, duplicates stay within the
// window per rebalance.
func TestRebalanceDuringLoad(t *testing.T) {
	skipShort(t)
	c := startCluster(t, 6, "in", "out")
	task := writeTask(t, k2kTask(c.Addr(), "rebal", ""))
	out := watchOut(t, c.Addr())
	// The load lasts until every member wrote: on a slow machine a member
	// that joins once a fixed input is consumed has nothing to do.
	lp := produceUntil(t, c.Addr(), "in", 0, 200_000, 5_000)
	a := startSluice(t, "worker a", []string{"WORKER=a"}, task)
	testkit.WaitFor(t, "the first member writing", func() bool { return out.wrote("a") > 0 })
	b := startSluice(t, "worker b", []string{"WORKER=b"}, task)
	testkit.WaitFor(t, "the second member writing", func() bool { return out.wrote("b") > 0 })
	cc := startSluice(t, "worker c", []string{"WORKER=c"}, task)
	testkit.WaitFor(t, "the third member writing", func() bool { return out.wrote("c") > 0 })
	b.Stop(t)
	n := lp.until(t)
	testkit.WaitFor(t, "every input record committed", func() bool { return committedTotal(t, c.Addr(), "rebal") == int64(n) })
	a.Stop(t)
	cc.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n, false, 30*time.Second)
	dups := checkAll(t, counts, total, n)
	w := out.all(t, c.Addr())
	t.Logf("%d records, %d duplicates over 3 rebalances; written by a: %d, b: %d, c: %d", n, dups, w["a"], w["b"], w["c"])
	if dups > 3*window {
		t.Fatalf("%d duplicates over 3 rebalances; the bound is %d", dups, 3*window)
	}
}

// TestBrokerCutAndRestore: the brokers go away for a few seconds (every
// connection reset, dials refused) while records flow, and come back; the
// process rides it out (no restart) and every record arrives.
func TestBrokerCutAndRestore(t *testing.T) {
	skipShort(t)
	const n = 15_000
	c := startCluster(t, 4, "in", "out")
	task := writeTask(t, k2kTask(c.Addr(), "cut", ""))
	lp := produceLoad(t, c.Addr(), "in", 0, n, 5_000)
	p := startSluice(t, "sluice", nil, task)
	testkit.WaitFor(t, "records flowing", func() bool { return committedTotal(t, c.Addr(), "cut") > 1000 })
	c.Cut()
	time.Sleep(2500 * time.Millisecond) // the length of the outage, not synchronisation
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	lp.wait(t)
	testkit.WaitFor(t, "every input record committed after the outage", func() bool { return committedTotal(t, c.Addr(), "cut") == n })
	if p.Exited() {
		t.Fatalf("sluice exited during the outage: %v", p.Err())
	}
	p.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n, false, 30*time.Second)
	dups := checkAll(t, counts, total, n)
	t.Logf("%d records, %d duplicates across a 2.5 s outage (input topic holds %d records)", n, dups, topicRecords(t, c.Addr(), "in"))
	if dups > window {
		t.Fatalf("%d duplicates; the bound is %d", dups, window)
	}
}

// TestExactlyOnceCrash runs with exactly_once = true and kills the process
// at random moments while records flow: a read_committed reader of the
// output sees every input record exactly once, and the one record the
// output rejects lands once in the dead-letter topic.
func TestExactlyOnceCrash(t *testing.T) {
	skipShort(t)
	const n, kills, poison = 15_000, 3, 4242
	c := startCluster(t, 4, "in", "out", "dlq")
	task := writeTask(t, fmt.Sprintf(`name = "eos"
exactly_once = true
max_in_flight = 4
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "eos"
instance_id = "eos-1"
offset = "earliest"
concurrency = 2
max_poll_records = 100
heartbeat_interval = "250ms"
session_timeout = "6s"
rebalance_timeout = "12s"
commit_interval = "200ms"
transaction_timeout = "30s"
fetch_max_wait = "100ms"
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.value.seq", pad = "$.data.value.pad" }
template = '{"id":"${id}","seq":${seq},"pad":"${pad}"}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
batch_max_bytes = "4KiB"
delivery_timeout = "10s"
batch = { max_events = 100 }
[retry]
policy = "none"
[dead_letter]
type = "kafka"
brokers = [%[1]q]
topic = "dlq"
delivery_timeout = "10s"
`, c.Addr()))
	// The poison record's template output is larger than the sink's
	// batch_max_bytes.
	cl := newClient(t, c.Addr())
	lp := produceLoad(t, c.Addr(), "in", 0, poison, 5_000)
	lp.wait(t)
	big := strings.Replace(string(order(poison)), `{"seq"`, `{"pad":"`+strings.Repeat("x", 5000)+`","seq"`, 1)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k0"), Value: []byte(big)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lp = produceLoad(t, c.Addr(), "in", poison+1, n, 3_000)
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range kills {
		p := startSluice(t, fmt.Sprintf("sluice run %d", i+1), nil, task)
		time.Sleep(time.Duration(700+rnd.IntN(1300)) * time.Millisecond) // a random moment to crash, not synchronisation
		p.Kill()
	}
	lp.wait(t)
	p := startSluice(t, "final run", nil, task)
	testkit.WaitFor(t, "every input record committed", func() bool { return alive(t, p) && committedTotal(t, c.Addr(), "eos") == n })
	p.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n-1, true, 30*time.Second)
	for seq, k := range counts {
		if k != 1 {
			t.Errorf("record %d arrived %d times for a read_committed reader", seq, k)
		}
	}
	if counts[poison] != 0 {
		t.Fatalf("the oversize record reached the output")
	}
	if len(counts) != n-1 || total != n-1 {
		var missing []int
		for i := range n {
			if i != poison && counts[i] == 0 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("read_committed output: %d records, %d distinct, want %d; missing %v", total, len(counts), n-1, missing[:min(len(missing), 20)])
	}
	dead := readAll(t, c.Addr(), "dlq", true)
	if len(dead) != 1 || !strings.Contains(string(dead[0].Value), fmt.Sprintf(`"seq":%d`, poison)) {
		t.Fatalf("dead-letter topic holds %d committed records, want the oversize one once", len(dead))
	}
	_, raw := tally(t, c.Addr(), "out", n-1, false, 30*time.Second)
	t.Logf("%d records exactly once after %d crashes (a read_uncommitted reader sees %d, aborted transactions included)", n-1, kills, raw)
}

// TestExactlyOnceScaleOut: with exactly_once, a second process joins the
// group under load (a rebalance aborts open transactions), then the first
// stops mid-stream; a read_committed reader still sees every record once.
func TestExactlyOnceScaleOut(t *testing.T) {
	skipShort(t)
	c := startCluster(t, 4, "in", "out")
	task := writeTask(t, fmt.Sprintf(`name = "eos-scale"
exactly_once = true
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "eos-scale"
instance_id = "${env:WORKER}"
offset = "earliest"
concurrency = 2
max_poll_records = 100
heartbeat_interval = "250ms"
session_timeout = "6s"
rebalance_timeout = "12s"
commit_interval = "200ms"
transaction_timeout = "30s"
fetch_max_wait = "100ms"
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.value.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
delivery_timeout = "10s"
[retry]
policy = "none"
`, c.Addr()))
	lp := produceUntil(t, c.Addr(), "in", 0, 200_000, 4_000)
	a := startSluice(t, "worker a", []string{"WORKER=a"}, task)
	testkit.WaitFor(t, "records committed by the first process", func() bool { return committedTotal(t, c.Addr(), "eos-scale") > 1000 })
	b := startSluice(t, "worker b", []string{"WORKER=b"}, task)
	testkit.WaitFor(t, "both processes in the group", func() bool { return groupMembers(t, c.Addr(), "eos-scale") == 2 })
	// The two-member group at work: more committed than when it formed.
	joined := committedTotal(t, c.Addr(), "eos-scale")
	testkit.WaitFor(t, "the two-member group committing", func() bool { return committedTotal(t, c.Addr(), "eos-scale") > joined+500 })
	a.Stop(t)
	n := lp.until(t)
	testkit.WaitFor(t, "every input record committed", func() bool { return alive(t, b) && committedTotal(t, c.Addr(), "eos-scale") == int64(n) })
	b.Stop(t)
	counts, total := tally(t, c.Addr(), "out", n, true, 30*time.Second)
	dups := checkAll(t, counts, total, n)
	if dups != 0 {
		t.Fatalf("%d duplicates for a read_committed reader", dups)
	}
	_, raw := tally(t, c.Addr(), "out", n, false, 30*time.Second)
	t.Logf("%d records exactly once across a join and a stop (read_uncommitted sees %d)", n, raw)
}
