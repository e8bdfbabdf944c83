package dlq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// replayDeadline bounds a replay that should end at once: it only turns a
// replay that never ends into a failure (a Read polls 5 s at a time).
const replayDeadline = 2 * time.Minute

// txnProducer returns a transactional producer to topic "dlq" of c, as a
// Kafka dead-letter sink under exactly_once writes.
func txnProducer(t *testing.T, c *kafkadev.Cluster, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// deadLetter is a dead-letter record of the event with the given id.
func deadLetter(partition int32, id string) *kgo.Record {
	return &kgo.Record{Partition: partition, Value: []byte(`{"specversion":"1.0","id":"` + id + `","source":"s","type":"t"}`),
		Headers: []kgo.RecordHeader{{Key: delivery.HeaderStage, Value: []byte("sink")}}}
}

// inTxn produces the records in one transaction, which it then commits or
// aborts.
func inTxn(t *testing.T, cl *kgo.Client, end kgo.TransactionEndTry, recs ...*kgo.Record) {
	t.Helper()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatal(err)
	}
}

// replayIDs opens a replay of topic "dlq" of c if s is nil, reads it to
// its end and returns the ids of the events, failing if it does not end.
func replayIDs(t *testing.T, c *kafkadev.Cluster, s *KafkaSource) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(replayDeadline))
	defer cancel()
	if s == nil {
		var err error
		if s, err = NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", nil, 0, component.Env{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
	}
	var ids []string
	for {
		b, err := s.Read(ctx)
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatalf("the replay did not end after the events %q: %v", ids, err)
		}
		for _, m := range b.Messages {
			if m.Err != nil {
				t.Fatalf("%v", m.Err)
			}
			_, after, _ := strings.Cut(string(m.Payload), `"id":"`)
			id, _, _ := strings.Cut(after, `"`)
			ids = append(ids, id)
		}
	}
}

// Under exactly_once a Kafka dead-letter queue is written in transactions:
// the end offset noted at the start is one past a commit marker, which is
// not a record. The replay ends once it has read the marker.
func TestKafkaTransactionalTopicEnds(t *testing.T) {
	c, err := kafkadev.Start(context.Background(), "127.0.0.1:0", 1, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := txnProducer(t, c, "dlq-sink")
	inTxn(t, cl, kgo.TryCommit, deadLetter(0, "e1"), deadLetter(0, "e2"))
	inTxn(t, cl, kgo.TryCommit, deadLetter(0, "e3"))
	if got := strings.Join(replayIDs(t, c, nil), ","); got != "e1,e2,e3" {
		t.Fatalf("replayed %q, want e1,e2,e3", got)
	}
}

// Records of an aborted transaction were never dead letters (the
// transaction rolled back and its events were processed again): the replay
// skips them, also when they are the last before the end.
func TestKafkaSkipsAbortedTransactions(t *testing.T) {
	for _, c := range []struct {
		name string
		ends []kgo.TransactionEndTry
		want string
	}{
		{"aborted first", []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit}, "t1"},
		{"aborted last", []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort}, "t0"},
		{"only aborted", []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryAbort}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cluster, err := kafkadev.Start(context.Background(), "127.0.0.1:0", 1, "dlq")
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			cl := txnProducer(t, cluster, "dlq-sink")
			for i, end := range c.ends {
				id := string(rune('0' + i))
				inTxn(t, cl, end, deadLetter(0, "t"+id), deadLetter(0, "t"+id))
			}
			want := c.want
			if want != "" {
				want += "," + want
			}
			if got := strings.Join(replayIDs(t, cluster, nil), ","); got != want {
				t.Fatalf("replayed %q, want %q", got, want)
			}
		})
	}
}

// A transaction open when the replay starts is within the end it notes:
// the replay waits for it, then emits its records if it commits and skips
// them if it aborts.
func TestKafkaTransactionOpenAtStart(t *testing.T) {
	ctx := context.Background()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 2, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	committing, aborting := txnProducer(t, c, "dlq-sink-a"), txnProducer(t, c, "dlq-sink-b")
	for _, p := range []struct {
		cl  *kgo.Client
		rec *kgo.Record
	}{{committing, deadLetter(0, "committed")}, {aborting, deadLetter(1, "aborted")}} {
		if err := p.cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.cl.ProduceSync(ctx, p.rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", nil, 0, component.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := committing.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := aborting.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replayIDs(t, c, s), ","); got != "committed" {
		t.Fatalf("replayed %q, want committed", got)
	}
}

// An event over the replay's max_event_size is a decode error of the
// replay, as the task's own Kafka source makes it.
func TestKafkaEventOverLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
	defer cancel()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 1, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	big := deadLetter(0, "big")
	big.Value = []byte(`{"specversion":"1.0","id":"big","source":"s","type":"t","data":"` + strings.Repeat("z", 2048) + `"}`)
	if err := cl.ProduceSync(ctx, deadLetter(0, "small"), big).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s, err := NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", nil, 0, component.Env{MaxEvent: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var errs []error
	for {
		b, err := s.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			errs = append(errs, m.Err)
		}
	}
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], lineformat.ErrTooLarge) {
		t.Fatalf("errors %v, want none for the small event and a too-large one for the 2 KiB event with a 1 KiB limit", errs)
	}
}

// A partition whose records were all removed (retention.ms passed, or
// kafka-delete-records) has log start = end > 0. Open marked a partition
// done only when its end offset was 0 and otherwise waited for a record at
// or past end - 1, which never comes: the replay read the other partitions
// and then never ended (polling 5 s at a time) instead of finishing with
// what the topic holds.
func TestKafkaReplayOfEmptiedPartitionEnds(t *testing.T) {
	ctx := context.Background()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 2, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("dlq"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, deadLetter(0, "kept"), deadLetter(1, "old1"), deadLetter(1, "old2")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Retention (here: delete-records) removes partition 1's records.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "dlq", Partition: 1, At: 2})
	del, err := kadm.NewClient(cl).DeleteRecords(ctx, offs)
	if err == nil {
		err = del.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	ids := replayIDs(t, c, nil) // fails if the replay does not end: partition 1 is empty, log start = end = 2
	if got := strings.Join(ids, ","); got != "kept" {
		t.Fatalf("replayed %q, want kept", got)
	}
}

// zstdBomb returns a v2 record batch of one record whose value is size
// bytes of 'x', zstd-compressed (a few KiB for hundreds of MiB).
func zstdBomb(t *testing.T, size int64) []byte {
	t.Helper()
	var body []byte
	body = append(body, 0)               // attributes
	body = binary.AppendVarint(body, 0)  // timestamp delta
	body = binary.AppendVarint(body, 0)  // offset delta
	body = binary.AppendVarint(body, -1) // null key
	body = binary.AppendVarint(body, size)
	head := binary.AppendVarint(nil, int64(len(body))+size+1)
	var comp bytes.Buffer
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	enc.ResetContentSize(&comp, int64(len(head)+len(body))+size+1)
	enc.Write(head)
	enc.Write(body)
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	for left := size; left > 0; left -= int64(len(chunk)) {
		enc.Write(chunk[:min(left, int64(len(chunk)))])
	}
	enc.Write([]byte{0}) // no headers
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, Attributes: 4, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: comp.Bytes()}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// A dead-letter topic is read through the same bound on decompressed
// batches as the Kafka source: a batch of 53 KB of zstd holding a 256 MiB
// value was decompressed whole (franz-go's default allows 1 GiB per
// batch). The replay now stops with an error naming the batch, having
// allocated a small part of it.
func TestKafkaReplayBoundsDecompressedBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(replayDeadline))
	defer cancel()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 1, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ProduceBatch(ctx, "dlq", zstdBomb(t, 256<<20)); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", nil, 0, component.Env{MaxEvent: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	_, err = s.Read(ctx)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "offsets 0 to 0 of partition 0 decompresses to more than 67108864 bytes") {
		t.Fatalf("Read: %v, want the batch refused", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("reading a batch that decompresses to 256 MiB allocated %d MiB", alloc>>20)
	}
}

// saslDeadLetters starts a cluster whose one user is sasl's, with dead
// letters e1 and e2 in topic "dlq", and returns it with the connection
// options of that user.
func saslDeadLetters(t *testing.T, ctx context.Context, sasl kafkaconf.SASL) (*kafkadev.Cluster, []kgo.Opt) {
	t.Helper()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"dlq"},
		Users: []kafkadev.User{{Mechanism: sasl.Mechanism, Name: sasl.Username, Password: sasl.Password.Reveal()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	conn := kafkaconf.Conn{Brokers: c.Addrs(), SASL: &sasl}
	opts, err := conn.Options(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("dlq"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, deadLetter(0, "e1"), deadLetter(0, "e2")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c, opts
}

// A dead-letter topic on a cluster that requires SASL could not be
// replayed: the source connected with the brokers of its address alone.
// It now takes the connection of the task's Kafka dead-letter sink that
// writes the topic, when that sink writes to one of the address's brokers;
// otherwise the error says where the settings come from.
func TestKafkaReplayConnectsAsTheDeadLetterSink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(replayDeadline))
	defer cancel()
	c, opts := saslDeadLetters(t, ctx, kafkaconf.SASL{Mechanism: "SCRAM-SHA-256", Username: "dl", Password: "dl-pass"})
	addr := "kafka://" + strings.Join(c.Addrs(), ",") + "/dlq"

	shared := component.NewShared()
	defer shared.Close()
	env := component.Env{Task: "orders", Shared: shared}
	for _, other := range []struct {
		task, topic string
		brokers     []string
	}{
		{"another-task", "dlq", c.Addrs()},            // another task's
		{"orders", "other-dlq", c.Addrs()},            // another topic's
		{"orders", "dlq", []string{"elsewhere:9092"}}, // another cluster's
	} {
		kafkaconf.ShareDeadLetter(shared, other.task, other.topic, other.brokers, opts)
		s, err := NewKafka(addr, nil, 0, env)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Open(ctx)
		if err == nil || !strings.Contains(err.Error(), `the replay takes them from the task's Kafka [dead_letter] when it writes topic "dlq"`) {
			t.Fatalf("with the credentials of %+v: open %v, want it refused, saying where credentials come from", other, err)
		}
	}

	kafkaconf.ShareDeadLetter(shared, "orders", "dlq", c.Addrs(), opts)
	s, err := NewKafka(addr, nil, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if got := strings.Join(replayIDs(t, c, s), ","); got != "e1,e2" {
		t.Fatalf("replayed %q, want e1,e2", got)
	}
}

// compactedTail makes partition 0 of topic "dlq" of c, which holds records
// up to offset from, look like a partition whose records from there up to
// end were removed by compaction, batch headers included: its end offset
// is end, and a fetch at or past from finds nothing, with a high watermark
// of end and the last stable offset *lso.
func compactedTail(c *kafkadev.Cluster, from, end int64, lso *atomic.Int64) {
	c.Kfake().ControlKey(kmsg.ListOffsets.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake().KeepControl()
		req := r.(*kmsg.ListOffsetsRequest)
		if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Timestamp != -1 {
			return nil, nil, false // only the end offset is made up
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = req.Topics[0].Topic
		sp := kmsg.NewListOffsetsResponseTopicPartition()
		sp.Partition, sp.Offset, sp.Timestamp, sp.LeaderEpoch = req.Topics[0].Partitions[0].Partition, end, -1, 0
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
	c.Kfake().ControlKey(kmsg.Fetch.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake().KeepControl()
		req := r.(*kmsg.FetchRequest)
		if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 {
			return nil, nil, false
		}
		rt, rp := req.Topics[0], req.Topics[0].Partitions[0]
		if rp.Partition != 0 || rp.FetchOffset < from {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		sp := kmsg.NewFetchResponseTopicPartition()
		sp.Partition, sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = 0, end, lso.Load(), 0
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
}

// A compacted topic can lose the records at the end of a partition (expired
// tombstones, an aborted transaction and its marker): the last record read
// is then short of the end noted at Open, the client has nothing more to
// hand out, and the replay waited for a record at end - 1 forever. A
// partition is now done once the next offset to read reaches its end,
// whatever records exist; a transaction still open below the end keeps it
// waiting, as documented.
func TestKafkaReplayEndsAtACompactedTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(replayDeadline))
	defer cancel()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 1, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, deadLetter(0, "e0"), deadLetter(0, "e1")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var lso atomic.Int64
	lso.Store(5)
	compactedTail(c, 2, 5, &lso) // records 2 to 4 are gone
	if got := strings.Join(replayIDs(t, c, nil), ","); got != "e0,e1" {
		t.Fatalf("replayed %q, want e0,e1", got)
	}

	// A transaction open at offset 4 (last stable offset 4): not done.
	lso.Store(4)
	s, err := NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", nil, 0, component.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	s.checkTails(ctx)
	if s.done[0] {
		t.Fatal("partition 0 done before its records were read")
	}
	b, err := s.Read(ctx)
	if err != nil || len(b.Messages) != 2 {
		t.Fatalf("read %d events (%v), want e0 and e1", len(b.Messages), err)
	}
	s.checkTails(ctx)
	if s.done[0] {
		t.Fatal("partition 0 done while a transaction below its end is open")
	}
	lso.Store(5) // it aborted, and compaction removed it
	s.checkTails(ctx)
	if !s.done[0] {
		t.Fatal("partition 0 not done: nothing is left below its end")
	}
}

// A standalone dlq task (type = "dlq" with a kafka:// path) had no way to
// name the SASL and TLS its cluster requires: only `sluice dlq replay`
// could borrow them from the task's dead-letter sink. The source now has
// client_id, sasl and tls keys of its own, which win over the sink's.
func TestKafkaReplayWithItsOwnCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(replayDeadline))
	defer cancel()
	c, _ := saslDeadLetters(t, ctx, kafkaconf.SASL{Mechanism: "SCRAM-SHA-512", Username: "replayer", Password: "r-pass"})
	src := func(sasl string) string {
		return fmt.Sprintf("path = \"kafka://%s/dlq\"\nclient_id = \"replay\"\n%s", strings.Join(c.Addrs(), ","), sasl)
	}
	open := func(cfg string) (*KafkaSource, error) {
		env := componenttest.Env(t, zerolog.WarnLevel, "source")
		env.Shared = component.NewShared()
		t.Cleanup(func() { env.Shared.Close() })
		// The dead-letter sink's credentials are wrong: the source's own win.
		wrong := kafkaconf.Conn{Brokers: c.Addrs(), SASL: &kafkaconf.SASL{Mechanism: "SCRAM-SHA-512", Username: "replayer", Password: "wrong"}}
		wopts, err := wrong.Options(t.TempDir(), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		kafkaconf.ShareDeadLetter(env.Shared, env.Task, "dlq", c.Addrs(), wopts)
		s := componenttest.Build(t, Register, component.KindSource, "dlq", cfg, env).(*KafkaSource)
		return s, s.Open(ctx)
	}

	s, err := open(src("[sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"replayer\"\npassword = \"r-pass\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if got := strings.Join(replayIDs(t, c, s), ","); got != "e1,e2" {
		t.Fatalf("replayed %q, want e1,e2", got)
	}

	// Own keys without SASL: no borrowing, and the error says which keys.
	if s, err := open(src("")); err == nil {
		s.Close(ctx)
		t.Fatal("a source whose own keys have no SASL opened a cluster that requires it")
	} else if !strings.Contains(err.Error(), "set the dlq source's sasl and tls keys") || strings.Contains(err.Error(), "[dead_letter]") {
		t.Fatalf("open: %v, want it to name the source's sasl and tls keys, not the dead-letter sink's, which own keys replace", err)
	}
}

// The connection keys are refused on a dead-letter file, which needs none.
func TestConnectionKeysNeedAKafkaPath(t *testing.T) {
	_, p := componenttest.Decode(t, Register, component.KindSource, "dlq", "path = \"dlq.jsonl\"\n[sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"p\"\n")
	probs := p.List()
	if len(probs) != 1 || probs[0].PathString() != "source.sasl" || !strings.Contains(probs[0].Msg, "applies only to a Kafka dead-letter topic") {
		t.Fatalf("problems %v, want one saying sasl applies only to a Kafka dead-letter topic", probs)
	}
}
