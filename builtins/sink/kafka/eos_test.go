package kafka_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// readCommitted reads every committed record of topic from the start,
// until want records arrived and no more came for a moment.
func readCommitted(t *testing.T, addr, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(testkit.Scale(testkit.DefaultWait))
	for time.Now().Before(deadline) {
		wait := 3 * time.Second
		if len(out) >= want {
			wait = 300 * time.Millisecond // anything more would be a duplicate
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		if len(recs) == 0 && len(out) >= want {
			break
		}
		out = append(out, recs...)
	}
	return out
}

// countSeqs counts recs in seen by their event's data.value.seq (the
// tests' inputs are {"seq": N}, wrapped by the source).
func countSeqs(t *testing.T, seen map[int]int, recs []*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		var v struct {
			Data struct{ Value struct{ Seq int } }
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		seen[v.Data.Value.Seq]++
	}
}

// seqCluster starts an in-process Kafka with the topics "in" and "out" (2
// partitions each) until the test ends, and a client of it.
func seqCluster(t *testing.T, ctx context.Context) (*kafkadev.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 2, Topics: []string{"in", "out"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

// produceSeqs writes {"seq": from} .. {"seq": to-1} to "in", keyed k0..k4.
func produceSeqs(t *testing.T, ctx context.Context, cl *kgo.Client, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, `{"seq":%d}`, i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// groupCommitted returns the offsets group committed, summed over its
// partitions (-1 when they cannot be read).
func groupCommitted(ctx context.Context, adm *kadm.Client, group string) int64 {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	return total
}

// TestEngineExactlyOnce runs Kafka to Kafka with exactly_once through the
// loader and the engine. Every record lands once for a read_committed
// reader, also when the brokers go away in the middle of a transaction
// (which aborts and is read again); a record the output rejects goes to a
// Kafka dead-letter topic inside the same transactions; the group's offsets
// end at the log end.
func TestEngineExactlyOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 3, Topics: []string{"in", "out", "dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 900
	produceE := func(from, to int) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
		if err != nil {
			return err
		}
		defer cl.Close()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			pad := strings.Repeat("p", 20)
			if i == 77 {
				pad = strings.Repeat("p", 3000)
			}
			recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprintf("k%d", i%11)), Value: fmt.Appendf(nil, `{"seq":%d,"pad":%q}`, i, pad)})
		}
		return cl.ProduceSync(ctx, recs...).FirstErr()
	}
	if err := produceE(0, n/2); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	task := fmt.Sprintf(`name = "eos"
exactly_once = true
max_in_flight = 6
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "eos"
offset = "earliest"
concurrency = 3
max_poll_records = 40
heartbeat_interval = "200ms"
commit_interval = "150ms"
transaction_timeout = "20s"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
batch_max_bytes = "2KiB"
delivery_timeout = "3s"
batch = { max_events = 32 }
[retry]
policy = "none"
[dead_letter]
type = "kafka"
brokers = [%[1]q]
topic = "dlq"
delivery_timeout = "3s"
`, c.Addr())
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	committedTotal := func() int64 { return groupCommitted(ctx, adm, "eos") }
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runTask(t, rctx, dir, task)
		done <- err
	}()
	waitCommitted := func(want int64) {
		t.Helper()
		testkit.WaitFor(t, fmt.Sprintf("the group to commit %d records", want), func() bool { return committedTotal() == want })
	}
	waitCommitted(n / 2)
	// The brokers go away while the second half flows: open transactions
	// fail and abort, and their records are read again once back.
	produced := make(chan error, 1)
	go func() { produced <- produceE(n/2, n) }()
	testkit.WaitFor(t, "the second half to flow", func() bool { return committedTotal() > n/2 })
	c.Cut()
	time.Sleep(1500 * time.Millisecond) // the length of the outage, not synchronisation
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	waitCommitted(n)
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	seen := map[int]int{}
	countSeqs(t, seen, readCommitted(t, c.Addr(), "out", n-1))
	for i := range n {
		switch {
		case i == 77 && seen[i] != 0:
			t.Errorf("record %d was written %d times; it is too large for the output", i, seen[i])
		case i != 77 && seen[i] != 1:
			t.Errorf("record %d was written %d times for a read_committed reader, want once", i, seen[i])
		}
	}
	dl := readCommitted(t, c.Addr(), "dlq", 1)
	if len(dl) != 1 || !strings.Contains(string(dl[0].Value), `"seq":77`) {
		t.Fatalf("dead-letter topic holds %d records, want the oversize one once", len(dl))
	}
}

// TestBlockedTaskResumes: under errors.tolerance = "none" a record the
// output cannot take (its templated topic does not exist) blocks the task,
// which holds its position; once the topic exists an admin resume rewinds
// the source and every record arrives: exactly once for a read_committed
// reader with exactly_once, at least once without. The metrics show the
// commits (and transactions).
func TestBlockedTaskResumes(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly_once=%v", eos), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 2, Topics: []string{"in", "out-eu"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 300
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			for i := range n {
				region := "eu"
				if i%50 == 49 {
					region = "us"
				}
				recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, `{"seq":%d,"region":%q}`, i, region)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			text := fmt.Sprintf(`name = "resume"
exactly_once = %[2]v
max_in_flight = 4
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "resume"
offset = "earliest"
concurrency = 2
max_poll_records = 20
heartbeat_interval = "200ms"
commit_interval = "200ms"
transaction_timeout = "20s"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out-${region}"
variables = { region = "$.data.value.region" }
delivery_timeout = "5s"
[retry]
policy = "none"
[errors]
tolerance = "none"
`, c.Addr(), eos)
			rctx, rcancel := context.WithCancel(ctx)
			run, ms, done := startTask(t, rctx, dir, text, engine.Options{HoldBlocked: true})
			wait := func(what string, cond func() bool) {
				t.Helper()
				if !testkit.Eventually(testkit.DefaultWait, cond) {
					t.Fatalf("timed out waiting for %s (state %v, reason %v)", what, run.State(), run.Reason())
				}
			}
			wait("the task to block", func() bool { return run.State() == engine.Blocked })
			adm := kadm.NewClient(cl)
			if _, err := adm.CreateTopic(ctx, 2, 1, nil, "out-us"); err != nil {
				t.Fatal(err)
			}
			run.Resume()
			wait("every record committed after the resume", func() bool { return groupCommitted(ctx, adm, "resume") == n })
			rcancel()
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
			seen := map[int]int{}
			for _, topic := range []string{"out-eu", "out-us"} {
				want := n - n/50
				if topic == "out-us" {
					want = n / 50
				}
				countSeqs(t, seen, readCommitted(t, c.Addr(), topic, want))
			}
			for i := range n {
				if seen[i] == 0 || eos && seen[i] != 1 {
					t.Fatalf("record %d arrived %d times (exactly_once %v)", i, seen[i], eos)
				}
			}
			var buf strings.Builder
			fams := metricstest.Gather(t, ms)
			for _, name := range []string{"sluice_kafka_consumer_commit_seconds", "sluice_kafka_transactions_total"} {
				f := fams[name]
				if f == nil {
					continue
				}
				for _, m := range f.Samples {
					switch m.Name {
					case "sluice_kafka_consumer_commit_seconds_count":
						fmt.Fprintf(&buf, "%s %v; ", m.Name, m.Value)
						if m.Value == 0 {
							t.Errorf("no commit observed")
						}
					case "sluice_kafka_transactions_total":
						fmt.Fprintf(&buf, "%s %v %v; ", m.Name, m.Labels, m.Value)
					}
				}
			}
			t.Logf("metrics: %s", buf.String())
			if eos && !strings.Contains(buf.String(), "committed") {
				t.Errorf("no committed transaction counted")
			}
		})
	}
}

// TestExactlyOnceRejectedAfterSend: with exactly_once, a record the brokers
// reject after it was sent (INVALID_RECORD here) fails the transaction for
// good: the task stops with the reason instead of aborting and meeting the
// same rejection forever, nothing of the transaction is visible, and the
// group keeps its position.
func TestExactlyOnceRejectedAfterSend(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"in", "out"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, &kgo.Record{Topic: "in", Value: fmt.Appendf(nil, `{"seq":%d}`, i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.InvalidRecord, Count: -1})
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	_, err = runTask(t, rctx, t.TempDir(), fmt.Sprintf(`name = "rej"
exactly_once = true
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "rej"
offset = "earliest"
commit_interval = "100ms"
transaction_timeout = "20s"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
delivery_timeout = "5s"
[retry]
policy = "none"
`, c.Addr()))
	if !errors.Is(err, engine.ErrStartFailed) || !strings.Contains(err.Error(), "INVALID_RECORD") || !strings.Contains(err.Error(), "fails the whole transaction") {
		t.Fatalf("run ended with %v; want StartFailed naming the rejection", err)
	}
	if rctx.Err() != nil {
		t.Fatal("the task kept running")
	}
	if got := readCommitted(t, c.Addr(), "out", 0); len(got) != 0 {
		t.Fatalf("%d records of the failed transaction are visible", len(got))
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "rej")
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			t.Fatalf("group committed offset %d of %s/%d", o.At, o.Topic, o.Partition)
		}
	})
}

// produceCorruptBatch appends to partition 0 of topic a record batch of n
// records whose zstd data cannot be decompressed, with a valid CRC.
func produceCorruptBatch(t *testing.T, ctx context.Context, c *kafkadev.Cluster, topic string, n int32) {
	t.Helper()
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, Attributes: 4, LastOffsetDelta: n - 1, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: n, Records: []byte("this is not zstd data")}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	if err := c.ProduceBatch(ctx, topic, raw); err != nil {
		t.Fatalf("produce the corrupt batch: %v", err)
	}
}

// TestExactlyOnceSkipsABatchItCannotDecompress: with exactly_once, a record
// batch the source cannot decompress is dead-lettered inside the
// transaction as one failed event naming its offsets, and the partition
// goes on past it (moving the offsets of a transactional session's
// partition): the records around it land once, the dead letter once, and
// the group's offset ends at the log end.
func TestExactlyOnceSkipsABatchItCannotDecompress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"in", "out", "dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(`{"seq":0}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceCorruptBatch(t, ctx, c, "in", 2) // offsets 1-2
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(`{"seq":3}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runTask(t, rctx, t.TempDir(), fmt.Sprintf(`name = "skip"
exactly_once = true
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "skip"
offset = "earliest"
commit_interval = "100ms"
transaction_timeout = "20s"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
delivery_timeout = "5s"
[retry]
policy = "none"
[dead_letter]
type = "kafka"
brokers = [%[1]q]
topic = "dlq"
delivery_timeout = "5s"
`, c.Addr()))
		done <- err
	}()
	adm := kadm.NewClient(cl)
	testkit.WaitFor(t, "the group to commit past the batch", func() bool {
		offs, err := adm.FetchOffsets(ctx, "skip")
		if err != nil {
			return false
		}
		o, ok := offs.Lookup("in", 0)
		return ok && o.At == 4
	})
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	var got []string
	for _, r := range readCommitted(t, c.Addr(), "out", 2) {
		got = append(got, string(r.Value))
	}
	if len(got) != 2 || !strings.Contains(got[0], `"offset":0`) || !strings.Contains(got[1], `"offset":3`) {
		t.Fatalf("out holds %q, want records 0 and 3 once", got)
	}
	dl := readCommitted(t, c.Addr(), "dlq", 1)
	if len(dl) != 1 {
		t.Fatalf("dlq holds %d records, want the skipped batch once", len(dl))
	}
	var reason string
	for _, h := range dl[0].Headers {
		if h.Key == "sluice-error" {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "in-0-1 to in-0-2") || !strings.Contains(reason, "cannot be decompressed") {
		t.Fatalf("dead letter reason %q", reason)
	}
}

// TestExactlyOnceCommitWhoseAnswerWasLost: with exactly_once, the brokers
// commit a transaction but the answer to EndTxn never arrives (the network
// goes away right after the request). The end of the cycle fails without
// knowing whether the commit happened; once the brokers are back the task
// must go on from what the group really committed, not read the
// transaction's records again, also after a later transaction aborts: a
// read_committed reader sees every output once.
func TestExactlyOnceCommitWhoseAnswerWasLost(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, cl := seqCluster(t, ctx)
	const n = 200
	produceRange := func(from, to int) { produceSeqs(t, ctx, cl, from, to) }
	produceRange(0, n/2)
	// The first commit reaches the brokers, which apply it; the answer is
	// lost with every connection, and the brokers stay away until the
	// task has given up on it.
	cut := cutAtFirstCommit(c)
	dir := t.TempDir()
	text := lostCommitTask(c.Addr(), "lost", 20)
	rctx, rcancel := context.WithCancel(ctx)
	_, ms, done := startTask(t, rctx, dir, text, engine.Options{})
	commitErrors := func() float64 {
		v, _ := metricstest.Gather(t, ms).Value("sluice_kafka_consumer_commit_errors_total")
		return v
	}
	testkit.WaitFor(t, "the task to give up on the lost commit", func() bool {
		return cut.Load() && commitErrors() > 0
	})
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	// The next transaction fails and aborts: the client rewinds to the
	// offsets it knows as committed, which do not include the lost
	// commit's.
	aborted := func() float64 {
		v, _ := metricstest.Gather(t, ms).Value("sluice_kafka_transactions_total", "outcome", "aborted")
		return v
	}
	before := aborted()
	fault := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotEnoughReplicas, Count: -1})
	produceRange(n/2, n)
	testkit.WaitFor(t, "a transaction to abort", func() bool { return aborted() > before })
	fault.Remove()
	adm := kadm.NewClient(cl)
	testkit.WaitFor(t, "every record committed", func() bool { return groupCommitted(ctx, adm, "lost") == n })
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	seen := map[int]int{}
	countSeqs(t, seen, readCommitted(t, c.Addr(), "out", n))
	var dups []int
	for i := range n {
		switch {
		case seen[i] == 0:
			t.Errorf("record %d is missing", i)
		case seen[i] > 1:
			dups = append(dups, i)
		}
	}
	if len(dups) > 0 {
		t.Errorf("%d records written more than once for a read_committed reader (the transaction whose answer was lost was read again): %v", len(dups), dups)
	}
}

// cutAtFirstCommit makes the first commit's EndTxn reach the brokers,
// which apply it, and its answer be lost with every connection: the
// brokers stay away until c.Restore. The flag reports that it happened.
func cutAtFirstCommit(c *kafkadev.Cluster) *atomic.Bool {
	cut := new(atomic.Bool)
	c.Kfake().ControlKey(kmsg.EndTxn.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.(*kmsg.EndTxnRequest).Commit && cut.CompareAndSwap(false, true) {
			c.Cut()
		}
		return nil, nil, false
	})
	return cut
}

// lostCommitTask is the exactly-once task "in" → "out" of the lost-commit
// tests, named name (its group too), reading maxPoll records at a time.
func lostCommitTask(addr, name string, maxPoll int) string {
	return fmt.Sprintf(`name = %[2]q
exactly_once = true
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = %[2]q
offset = "earliest"
max_poll_records = %[3]d
heartbeat_interval = "200ms"
commit_interval = "200ms"
transaction_timeout = "7s"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
delivery_timeout = "1s"
[retry]
policy = "none"
`, addr, name, maxPoll)
}

// TestLostCommitAnswerCountedByOutcome: a commit whose EndTxn answer was
// lost, but which the brokers applied, counts in
// sluice_kafka_transactions_total as committed once the task learns it
// did, not as aborted: nothing else aborts in this run, so an aborted
// count above 0 is the lost commit miscounted. One partition, written
// before the task starts, so that the lost commit carries every record:
// with two, the second partition's records could come in a transaction of
// their own, which the rebalance after the lost partitions aborts (and
// counts aborted, rightly).
func TestLostCommitAnswerCountedByOutcome(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"in", "out"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 100
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceSeqs(t, ctx, cl, 0, n)
	// The first commit reaches the brokers, which apply it; its answer is
	// lost with every connection.
	cut := cutAtFirstCommit(c)
	text := lostCommitTask(c.Addr(), "lostcount", 1000)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	lost := &logWatch{substr: "partitions lost"}
	_, ms, done := startTaskLogging(t, rctx, t.TempDir(), text, engine.Options{}, lost)
	value := func(name string, labels ...string) float64 {
		v, _ := metricstest.Gather(t, ms).Value(name, labels...)
		return v
	}
	testkit.WaitFor(t, "the task to give up on the lost commit", func() bool {
		return cut.Load() && value("sluice_kafka_consumer_commit_errors_total") > 0
	})
	// The heartbeats fail too, and the partitions go back to the group:
	// they come back at the offsets the lost commit carried, with nothing
	// left to read and no transaction to begin (the lost commit is counted
	// all the same). TestExactlyOnceCommitWhoseAnswerWasLost has the
	// partitions kept and read again.
	testkit.WaitFor(t, "the partitions to be lost", lost.seen.Load)
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	testkit.WaitFor(t, "every record committed", func() bool { return groupCommitted(ctx, adm, "lostcount") == n })
	testkit.WaitFor(t, "the lost commit counted", func() bool {
		return value("sluice_kafka_transactions_total", "outcome", "committed")+value("sluice_kafka_transactions_total", "outcome", "aborted") > 0
	})
	if a := value("sluice_kafka_transactions_total", "outcome", "aborted"); a != 0 {
		t.Errorf("transactions counted aborted: %v, want 0 (the commit whose answer was lost did commit)", a)
	}
	if c := value("sluice_kafka_transactions_total", "outcome", "committed"); c < 1 {
		t.Errorf("transactions counted committed: %v, want the lost commit counted", c)
	}
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// logWatch is an io.Writer for a task's log that records whether a line
// containing substr was written.
type logWatch struct {
	substr string
	seen   atomic.Bool
}

func (w *logWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.substr)) {
		w.seen.Store(true)
	}
	return len(p), nil
}

// TestExactlyOnceFencedProducerStops: two processes run with the same
// transactional_id; the second one's start fences the first, which stops
// in StartFailed naming the id (docs/kafka.md), while the second goes on:
// a read_committed reader sees every output once.
//
// The first process opens no transaction until the second has taken the
// producer id (its InitProducerID, which franz-go sends with its first
// record): the first's next write is then refused (its epoch is old) and
// it stops. A transaction of the first still open at that moment is
// fenced by a Kafka broker too, but not by kfake: it aborts the open
// transaction and takes the first process's abort that follows, at the
// old epoch, for a retry of an EndTxn that had bumped the epoch. It
// answers with the new epoch, franz-go adopts it, and the zombie goes on
// sharing the producer epoch with its successor, their transactions mixed
// (records written twice, or a zombie that never stops, about once in
// fifty runs). A Kafka broker keeps no previous epoch to retry at after a
// fence and answers PRODUCER_FENCED, which txnError makes permanent.
func TestExactlyOnceFencedProducerStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, cl := seqCluster(t, ctx)
	const n = 300
	produceRange := func(from, to int) { produceSeqs(t, ctx, cl, from, to) }
	text := fmt.Sprintf(`name = "fence"
exactly_once = true
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "fence"
offset = "earliest"
max_poll_records = 20
heartbeat_interval = "200ms"
session_timeout = "6s"
commit_interval = "100ms"
transaction_timeout = "10s"
transactional_id = "fence-fixed"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
delivery_timeout = "2s"
[retry]
policy = "none"
`, c.Addr())
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	start := func() (*engine.Task, <-chan error) {
		run, _, done := startTask(t, rctx, t.TempDir(), text, engine.Options{})
		return run, done
	}
	adm := kadm.NewClient(cl)
	committed := func() int64 { return groupCommitted(ctx, adm, "fence") }
	// Once hold is set, a transactional write waits for the second
	// process's InitProducerID: until then only the first one writes.
	var hold atomic.Bool
	var inits atomic.Int32
	secondInit := make(chan struct{})
	c.Kfake().ControlKey(kmsg.InitProducerID.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake().KeepControl()
		r := req.(*kmsg.InitProducerIDRequest)
		if r.TransactionalID != nil && *r.TransactionalID == "fence-fixed" && r.ProducerID < 0 && inits.Add(1) == 2 {
			close(secondInit) // the held write goes on after this request
		}
		return nil, nil, false
	})
	c.Kfake().ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake().KeepControl()
		if req.(*kmsg.ProduceRequest).TransactionID != nil && hold.Load() {
			select {
			case <-secondInit:
			default:
				c.Kfake().SleepControl(func() { <-secondInit })
			}
		}
		return nil, nil, false
	})
	produceRange(0, n/3)
	first, firstDone := start()
	testkit.WaitFor(t, "the first process to commit what it read", func() bool { return committed() == n/3 })
	hold.Store(true)
	second, secondDone := start()
	if _, err := c.Kfake().WaitGroupStable(ctx, "fence", 2); err != nil {
		t.Fatal(err)
	}
	produceRange(n/3, n)
	testkit.WaitFor(t, "the fenced process to stop", func() bool {
		return first.State() == engine.StartFailed
	})
	if reason := fmt.Sprint(first.Reason()); !strings.Contains(reason, "fence-fixed") {
		t.Errorf("fenced process stopped with %q, want the transactional_id named", reason)
	}
	testkit.WaitFor(t, "every record committed", func() bool { return committed() == n })
	if s := second.State(); s != engine.Running {
		t.Fatalf("second process is %v (%v)", s, second.Reason())
	}
	rcancel()
	<-firstDone
	if err := <-secondDone; err != nil {
		t.Fatalf("second process: %v", err)
	}
	seen := map[int]int{}
	countSeqs(t, seen, readCommitted(t, c.Addr(), "out", n))
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("record %d written %d times", i, seen[i])
		}
	}
}
