package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
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
	deadline := time.Now().Add(20 * time.Second)
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
	produce := func(from, to int) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
		if err != nil {
			t.Fatal(err)
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
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n/2)
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
	committedTotal := func() int64 {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
		defer cl.Close()
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "eos")
		if err != nil {
			return -1
		}
		total := int64(0)
		offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		return total
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runTask(t, rctx, dir, task)
		done <- err
	}()
	waitCommitted := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for committedTotal() != want {
			if time.Now().After(deadline) {
				t.Fatalf("group committed %d records, want %d", committedTotal(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitCommitted(n / 2)
	// The brokers go away while the second half flows: open transactions
	// fail and abort, and their records are read again once back.
	go produce(n/2, n)
	time.Sleep(100 * time.Millisecond)
	c.Cut()
	time.Sleep(1500 * time.Millisecond)
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	waitCommitted(n)
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	seen := map[int]int{}
	for _, r := range readCommitted(t, c.Addr(), "out", n-1) {
		var v struct {
			Data struct{ Value struct{ Seq int } }
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		seen[v.Data.Value.Seq]++
	}
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
