package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestRegister(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindSink, "kafka")
	if !ok {
		t.Fatal("kafka sink not registered")
	}
	fields, err := component.FieldsOf(spec.New())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if f.Doc == "" {
			t.Errorf("key %q has no doc", f.Name)
		}
	}
	var s any = &Sink{}
	if _, ok := s.(delivery.RawDeadLetters); !ok {
		t.Fatal("the kafka sink must keep dead letters raw")
	}
}

func TestConfigProblems(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"brokers": []any{"127.0.0.1:9092"}, "topic": "t"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		tree map[string]any
		want []string // "path: substring"
	}{
		{"ok", base("key", "${k}", "variables", map[string]any{"k": "$.data.key"}), nil},
		{"ok manual", base("partitioner", "manual", "partition", int64(3)), nil},
		{"missing topic", map[string]any{"brokers": []any{"b:1"}}, []string{`sink: missing required key "topic"`}},
		{"bad fixed topic", base("topic", "a b"), []string{"sink.topic: invalid topic name"}},
		{"unknown variable in topic", base("topic", "orders-${region}"), []string{`sink.topic: unknown variable "region"`}},
		{"bad jsonpath", base("key", "${k}", "variables", map[string]any{"k": "$.a[*]"}), []string{"sink.variables.k: JSONPATH_INVALID"}},
		{"manual without partition", base("partitioner", "manual"), []string{"needs the partition key"}},
		{"partition without manual", base("partition", int64(1)), []string{"sink.partition: partition is used only with"}},
		{"partition type", base("partitioner", "manual", "partition", true), []string{"sink.partition: expected an integer or a template"}},
		{"idempotent acks", base("acks", "leader"), []string{`sink.acks: the idempotent producer needs acks = "all"`}},
		{"delivery timeout", base("delivery_timeout", "500ms"), []string{"sink.delivery_timeout: must be at least 1s"}},
		{"bad compression", base("compression", "brotli"), []string{"sink.compression: invalid value"}},
		{"bad broker", base("brokers", []any{"kafka"}), []string{`sink.brokers[0]: invalid broker address "kafka"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := decodeConfig(tt.tree)
			var got []string
			for _, p := range probs {
				got = append(got, p.PathString()+": "+p.Msg)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q, want it to contain %q", got[i], w)
				}
			}
		})
	}
}

// TestTemplates: topic, key and headers come from templates over the
// original event (not the payload); config headers win over the record's,
// the others pass through.
func TestTemplates(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"orders-eu", "orders-us"}})
	s := newSink(t, testEnv(t), map[string]any{
		"brokers":   []any{c.Addr()},
		"topic":     "orders-${region}",
		"key":       "${order}",
		"headers":   map[string]any{"region": "${region}", "origin": "sluice", "trace": "${jsonEscape(order)}"},
		"variables": map[string]any{"region": "$.data.value.region", "order": "$.data.value.id"},
	})
	m1 := msg(`{"data":{"value":{"region":"eu","id":"o-1"}}}`, `{"out":1}`)
	m1.Key = []byte("ignored: the key template wins")
	m1.Headers = []message.Header{{Key: "trace", Value: []byte("replaced")}, {Key: "kept", Value: []byte("yes")}}
	m2 := msg(`{"data":{"value":{"region":"us","id":"o\"2"}}}`, `payload 2`)
	if err := write(t, s, m1, m2); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, c.Addr(), 2, "orders-eu", "orders-us")
	r1, r2 := recs[0], recs[1]
	if r1.Topic != "orders-eu" || string(r1.Key) != "o-1" || string(r1.Value) != `{"out":1}` {
		t.Fatalf("record 1: topic %q key %q value %q", r1.Topic, r1.Key, r1.Value)
	}
	if r2.Topic != "orders-us" || string(r2.Key) != `o"2` || string(r2.Value) != "payload 2" {
		t.Fatalf("record 2: topic %q key %q value %q", r2.Topic, r2.Key, r2.Value)
	}
	for k, want := range map[string]string{"region": "eu", "origin": "sluice", "trace": "o-1", "kept": "yes"} {
		if got, _ := header(r1, k); got != want {
			t.Errorf("record 1 header %q = %q, want %q (all: %v)", k, got, want, r1.Headers)
		}
	}
	if len(r1.Headers) != 4 {
		t.Errorf("record 1 headers %v, want 4", r1.Headers)
	}
	if got, _ := header(r2, "trace"); got != `o\"2` {
		t.Errorf("jsonEscape header %q", got)
	}
}

// TestRecordMetadata: without a key template the record's own key and
// headers are written, and the source time becomes the record time.
func TestRecordMetadata(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"m"}})
	tm := time.UnixMilli(1655952591589)
	tests := []struct {
		name    string
		extra   map[string]any
		key     string
		headers int
		sameTS  bool
	}{
		{"defaults", nil, "k1", 1, true},
		{"no forward, now", map[string]any{"forward_headers": false, "timestamp": "now"}, "k1", 0, false},
		{"empty key template", map[string]any{"key": "${missing}", "variables": map[string]any{"missing": "$.nope"}}, "", 1, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := map[string]any{"brokers": []any{c.Addr()}, "topic": "m"}
			for k, v := range tt.extra {
				tree[k] = v
			}
			s := newSink(t, testEnv(t), tree)
			m := msg(`{}`, "v"+strconv.Itoa(i))
			m.Key, m.Time = []byte("k1"), tm
			m.Headers = []message.Header{{Key: "h", Value: []byte("1")}}
			if err := write(t, s, m); err != nil {
				t.Fatal(err)
			}
			recs := consumeAll(t, c.Addr(), i+1, "m")
			r := recs[i]
			if string(r.Value) != "v"+strconv.Itoa(i) || string(r.Key) != tt.key || len(r.Headers) != tt.headers {
				t.Fatalf("record value %q key %q headers %v", r.Value, r.Key, r.Headers)
			}
			if tt.key == "" && r.Key != nil {
				t.Fatalf("an empty rendered key must be no key, got %q", r.Key)
			}
			if r.Timestamp.Equal(tm) != tt.sameTS {
				t.Fatalf("timestamp %v (source time %v)", r.Timestamp, tm)
			}
		})
	}
}

// murmur2 is Kafka's partitioning hash (org.apache.kafka.common.utils.
// Utils.murmur2), written out here as an oracle independent of franz-go.
func murmur2(data []byte) int32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n & 3 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

func TestPartitioners(t *testing.T) {
	const parts = 6
	c := cluster(t, kafkadev.Options{Partitions: parts, Topics: []string{"hash", "rr", "man", "mant"}})
	t.Run("hash", func(t *testing.T) {
		s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "hash"})
		var msgs []message.Message
		for i := range 40 {
			m := msg(`{}`, strconv.Itoa(i))
			m.Key = []byte(fmt.Sprintf("user-%d", i%10))
			msgs = append(msgs, m)
		}
		if err := write(t, s, msgs...); err != nil {
			t.Fatal(err)
		}
		for _, r := range consumeAll(t, c.Addr(), 40, "hash") {
			want := int32(uint32(murmur2(r.Key))&0x7fffffff) % parts
			if r.Partition != want {
				t.Fatalf("key %q went to partition %d, Kafka's murmur2 says %d", r.Key, r.Partition, want)
			}
		}
	})
	t.Run("round_robin", func(t *testing.T) {
		s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "rr", "partitioner": "round_robin", "linger": "0s"})
		var msgs []message.Message
		for i := range 3 * parts {
			m := msg(`{}`, strconv.Itoa(i))
			m.Key = []byte("same key")
			msgs = append(msgs, m)
		}
		if err := write(t, s, msgs...); err != nil {
			t.Fatal(err)
		}
		per := map[int32]int{}
		for _, r := range consumeAll(t, c.Addr(), 3*parts, "rr") {
			per[r.Partition]++
		}
		for p := range int32(parts) {
			if per[p] != 3 {
				t.Fatalf("round robin spread %v, want 3 per partition", per)
			}
		}
	})
	t.Run("manual", func(t *testing.T) {
		s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "man", "partitioner": "manual", "partition": int64(4)})
		if err := write(t, s, msg(`{}`, "a"), msg(`{}`, "b")); err != nil {
			t.Fatal(err)
		}
		for _, r := range consumeAll(t, c.Addr(), 2, "man") {
			if r.Partition != 4 {
				t.Fatalf("manual partition 4, record in %d", r.Partition)
			}
		}
	})
	t.Run("manual template", func(t *testing.T) {
		s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "mant", "partitioner": "manual",
			"partition": "${p}", "variables": map[string]any{"p": "$.data.partition"}})
		err := write(t, s,
			msg(`{"data":{"partition":2}}`, "to 2"),
			msg(`{"data":{"partition":99}}`, "out of range"),
			msg(`{"data":{"partition":"x"}}`, "not a number"),
			msg(`{"data":{"partition":5}}`, "to 5"))
		var re *component.RecordErrors
		if !errors.As(err, &re) || len(re.Errs) != 2 {
			t.Fatalf("want 2 record errors, got %v", err)
		}
		for _, i := range []int{1, 2} {
			if component.ClassOf(re.Errs[i]) != component.ClassEventPermanent {
				t.Fatalf("record %d: %v is %v, want event-permanent", i, re.Errs[i], component.ClassOf(re.Errs[i]))
			}
		}
		if !strings.Contains(re.Errs[1].Error(), "out of range") || !strings.Contains(re.Errs[2].Error(), `rendered "x"`) {
			t.Fatalf("messages: %v / %v", re.Errs[1], re.Errs[2])
		}
		recs := consumeAll(t, c.Addr(), 2, "mant")
		if recs[0].Partition != 2 || recs[1].Partition != 5 {
			t.Fatalf("partitions %d, %d", recs[0].Partition, recs[1].Partition)
		}
	})
}

func TestCompression(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"z"}})
	// Watch the batches on the wire: the codec is in the low bits of the
	// record batch attributes (byte 21 of a v2 batch).
	var mu sync.Mutex
	seen := map[int]bool{}
	c.Kfake().ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				if len(p.Records) > 22 {
					mu.Lock()
					seen[int(p.Records[22]&0x07)] = true
					mu.Unlock()
				}
			}
		}
		return nil, nil, false
	})
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	value := strings.Repeat(`{"k":"compressible"}`, 50)
	for i, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			mu.Lock()
			clear(seen)
			mu.Unlock()
			s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "z", "compression": codec})
			if err := write(t, s, msg(`{}`, value+codec)); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			onWire := seen[i] && len(seen) == 1
			mu.Unlock()
			if !onWire {
				t.Fatalf("codec %s (%d) not seen on the wire: %v", codec, i, seen)
			}
			recs := consumeAll(t, c.Addr(), i+1, "z")
			if string(recs[i].Value) != value+codec {
				t.Fatalf("value round trip failed for %s", codec)
			}
		})
	}
}

// TestBrokerGoneAndBack: while the broker is unreachable Write fails with
// retryable record errors after delivery_timeout; once it is back a retry
// succeeds.
func TestBrokerGoneAndBack(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"g"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "g", "delivery_timeout": "1s"})
	if err := write(t, s, msg(`{}`, "before")); err != nil {
		t.Fatal(err)
	}
	c.Cut()
	err := write(t, s, msg(`{}`, "during-1"), msg(`{}`, "during-2"))
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 {
		t.Fatalf("want both records failed, got %v", err)
	}
	for i, e := range re.Errs {
		if component.ClassOf(e) != component.ClassRetryable {
			t.Fatalf("record %d: %v is %v, want retryable", i, e, component.ClassOf(e))
		}
	}
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	// The engine would retry the write; do the same until it goes through.
	var last error
	if !testkit.Eventually(testkit.DefaultWait, func() bool {
		last = write(t, s, msg(`{}`, "during-1"), msg(`{}`, "during-2"))
		return last == nil
	}) {
		t.Fatalf("still failing after the broker came back: %v", last)
	}
	recs := consumeAll(t, c.Addr(), 3, "g")
	got := []string{}
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "before,during-1,during-2" {
		t.Fatalf("records %v", got)
	}
	if n := metricValue(t, s.m.errors.WithLabelValues("retryable")); n != 2 {
		t.Fatalf("retryable error counter %v, want 2", n)
	}
}

// TestMessageTooLarge: a record over batch_max_bytes fails alone as
// event-permanent; the others of the Write land.
func TestMessageTooLarge(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"big"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "big", "batch_max_bytes": "1KiB"})
	err := write(t, s, msg(`{}`, "small-1"), msg(`{}`, strings.Repeat("x", 4096)), msg(`{}`, "small-2"))
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil {
		t.Fatalf("want record 1 failed, got %v", err)
	}
	if component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("record 1: %v (%v)", re.Errs[1], component.ClassOf(re.Errs[1]))
	}
	// The client refused it, not the brokers: the error names the limit
	// to raise (franz-go's text speaks of the server's).
	if msg := re.Errs[1].Error(); !strings.Contains(msg, "over the sink's batch_max_bytes (1024)") {
		t.Fatalf("record 1: %v: want the batch_max_bytes limit named", msg)
	}
	recs := consumeAll(t, c.Addr(), 2, "big")
	if string(recs[0].Value) != "small-1" || string(recs[1].Value) != "small-2" {
		t.Fatalf("records %q %q", recs[0].Value, recs[1].Value)
	}
}

// batchHasNullKey reports whether a produce request carries a record
// without a key: what a compacted topic refuses (Kafka answers the whole
// batch with INVALID_RECORD, "Compacted topic cannot accept message without
// key").
func batchHasNullKey(req kmsg.Request) bool {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		return false
	}
	for _, rt := range pr.Topics {
		for _, rp := range rt.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(rp.Records); err != nil {
				continue
			}
			recs, err := kfake.BatchRecords(b)
			if err != nil {
				continue
			}
			for _, r := range recs {
				if r.Key == nil {
					return true
				}
			}
		}
	}
	return false
}

// TestBrokerRejectedBatchFailsOnlyItsBadRecord: a broker rejects a whole
// batch for one record in it (here a compacted topic refuses the one
// record without a key), and franz-go fails every record of the batch
// with the code. The sink classed each as event-permanent and the engine
// dead-lettered all five, although docs/kafka.md promises that one bad
// record never fails its neighbours. The records are now sent again one
// by one: the four good ones land, and only the one the broker still
// rejects alone fails, as event-permanent.
func TestBrokerRejectedBatchFailsOnlyItsBadRecord(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"compacted"}})
	c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "compacted", Err: kerr.InvalidRecord, Count: -1, When: batchHasNullKey})
	// linger lets the Write's records share one batch, as they do under
	// load (a request in flight gathers the next records anyway).
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "compacted", "linger": "1s"})
	var msgs []message.Message
	for i := range 5 {
		m := msg(`{}`, fmt.Sprintf("v%d", i))
		if i != 2 {
			m.Key = fmt.Appendf(nil, "k%d", i)
		}
		msgs = append(msgs, m)
	}
	err := write(t, s, msgs...)
	var re *component.RecordErrors
	if !errors.As(err, &re) {
		t.Fatalf("want record 2 failed, got %v", err)
	}
	if len(re.Errs) != 1 || re.Errs[2] == nil {
		t.Fatalf("failed records %v, want only record 2 (the record without a key)", re.Errs)
	}
	if component.ClassOf(re.Errs[2]) != component.ClassEventPermanent || !strings.Contains(re.Errs[2].Error(), "INVALID_RECORD") {
		t.Fatalf("record 2: %v (%v), want event-permanent INVALID_RECORD", re.Errs[2], component.ClassOf(re.Errs[2]))
	}
	var got []string
	for _, r := range consumeAll(t, c.Addr(), 4, "compacted") {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "v0,v1,v3,v4" {
		t.Fatalf("topic holds %q, want the four good records in order", got)
	}
}

// TestBadTemplatedTopicsAreForgotten: a templated topic routes records by
// event data ("events-${tenant}"). A record routed to a topic that does not
// exist is dead-lettered, as documented, but the producer kept the name
// for good: every later metadata request asked for every bad name ever
// seen, and the unresolved topics made it refresh every
// metadata_min_age, forever. Data with many distinct bad names (a typo'd
// field, a hostile producer) grew the client and every metadata round
// trip without bound. Such topics were then purged from the producer;
// now the sink looks them up before the producer sees them
// (TestMissingTemplatedTopicFailsAfterThreeLookups).
func TestBadTemplatedTopicsAreForgotten(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"there"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "${t}", "variables": map[string]any{"t": "$.t"}})
	var msgs []message.Message
	for i := range 50 {
		msgs = append(msgs, msg(fmt.Sprintf(`{"t":"nowhere-%d"}`, i), "x"))
	}
	err := write(t, s, msgs...)
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 50 {
		t.Fatalf("want the 50 records to missing topics failed, got %v", err)
	}
	if err := write(t, s, msg(`{"t":"there"}`, "ok")); err != nil {
		t.Fatal(err)
	}
	// Watch the next metadata requests the client sends (fastOpts: at
	// least one a second).
	var mu sync.Mutex
	asked := map[string]bool{}
	h := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Observe: true, Count: -1, When: func(r kmsg.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range r.(*kmsg.MetadataRequest).Topics {
			if rt.Topic != nil && strings.HasPrefix(*rt.Topic, "nowhere-") {
				asked[*rt.Topic] = true
			}
		}
		return true
	}})
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := h.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
	h.Remove()
	// When runs on the cluster's one goroutine, and still may for a
	// request the cluster took in before Remove: mu is held only to read,
	// never while the test waits on the cluster, or that goroutine waits
	// on mu and no request is ever answered again.
	mu.Lock()
	n := len(asked)
	mu.Unlock()
	if n > 0 {
		t.Fatalf("long after their records were dead-lettered, the producer still asks the brokers for %d bad topic names in its metadata requests", n)
	}
	// A name routed to again is asked for again, and fails again.
	err = write(t, s, msg(`{"t":"nowhere-1"}`, "x"))
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent {
		t.Fatalf("a record routed to a purged missing topic: %v", err)
	}
}

// TestMissingTemplatedTopicFailsAfterThreeLookups: a record routed to a
// templated topic that does not exist waited for franz-go to give up on the
// topic, after 5 metadata refreshes of its own, paced by the state of its
// metadata loop: 250 ms apart, or metadata_min_age (5 s by default) apart
// when the failure of the previous missing topic had left the loop
// re-updating at that pace. With franz-go's default timers such a record
// failed after 1 s or after 20 s, and with a delivery_timeout under 20 s it
// never failed event-permanent at all: each try ended in a retryable
// deadline. The sink now looks such a topic up itself, so each record fails
// after exactly topicLookups metadata requests naming its topic, all of
// them the sink's, whatever the producer's metadata loop is doing. The
// client keeps franz-go's default timers here.
func TestMissingTemplatedTopicFailsAfterThreeLookups(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"there"}})
	s := buildSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "${t}", "variables": map[string]any{"t": "$.t"}})
	s.extra = nil
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// Each missing topic comes right after the previous one failed: the
	// case that took 20 s.
	for k := range 4 {
		topic := fmt.Sprintf("nowhere-%d", k)
		asked := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: topic, Observe: true, Count: -1})
		err := write(t, s, msg(`{"t":"there"}`, fmt.Sprint(k)), msg(fmt.Sprintf(`{"t":%q}`, topic), "x"))
		asked.Remove()
		var re *component.RecordErrors
		if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil {
			t.Fatalf("write %d: want only the record to %q failed, got %v", k, topic, err)
		}
		if n := asked.Hits(); n != topicLookups {
			t.Fatalf("write %d: %d metadata requests named %q, want the sink's %d lookups (%v)", k, n, topic, topicLookups, re.Errs[1])
		}
		if component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "does not exist") {
			t.Fatalf("write %d: %v (%v), want event-permanent: the topic does not exist", k, re.Errs[1], component.ClassOf(re.Errs[1]))
		}
	}
	if recs := consumeAll(t, c.Addr(), 4, "there"); len(recs) != 4 {
		t.Fatalf("topic there holds %d records, want the 4 good ones", len(recs))
	}
}

// TestTopicLeftByADeadlineIsForgotten: records reach the producer when the
// sink's lookup cannot tell (here the brokers answer LEADER_NOT_AVAILABLE
// for the topic); one that then fails on its deadline leaves the topic in
// the producer, which would ask for it at every metadata refresh for good.
// A later record's lookup finds the topic missing and fails the record
// without the producer, so no UNKNOWN_TOPIC_OR_PARTITION from the producer
// purges the topic: the lookup does.
func TestTopicLeftByADeadlineIsForgotten(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"there"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "${t}", "variables": map[string]any{"t": "$.t"}, "delivery_timeout": "1s"})
	// The producer tracks a topic that exists, so that its metadata
	// requests name at least that one (the faults below see requests
	// through the topics they name).
	if err := write(t, s, msg(`{"t":"there"}`, "ok")); err != nil {
		t.Fatal(err)
	}
	busy := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "late", Err: kerr.LeaderNotAvailable, Count: -1})
	err := write(t, s, msg(`{"t":"late"}`, "x"))
	var re *component.RecordErrors
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassRetryable {
		t.Fatalf("a record to a topic the brokers cannot serve yet: %v, want a retryable deadline", err)
	}
	busy.Remove()
	err = write(t, s, msg(`{"t":"late"}`, "x"))
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent {
		t.Fatalf("a record to a topic that does not exist: %v, want event-permanent", err)
	}
	// The next metadata requests (fastOpts: at least one a second) no
	// longer name it.
	all := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Observe: true, Count: -1})
	late := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "late", Observe: true, Count: -1})
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := all.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n := late.Hits(); n > 0 {
		t.Fatalf("after the topic was found missing, %d metadata requests still named it", n)
	}
}

// TestUnknownTopic: a missing fixed topic stops the task at Open; a
// template routing one record to a missing topic fails only that record.
func TestUnknownTopic(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"there"}})
	s := buildSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "missing"})
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	err := s.Open(ctx)
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), `"missing" does not exist`) {
		t.Fatalf("open with a missing topic: %v (%v)", err, component.ClassOf(err))
	}
	s2 := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "${t}", "variables": map[string]any{"t": "$.t"}})
	err = write(t, s2, msg(`{"t":"there"}`, "1"), msg(`{"t":"nowhere"}`, "2"), msg(`{"t":"bad topic!"}`, "3"))
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 {
		t.Fatalf("want records 1 and 2 failed, got %v", err)
	}
	for _, i := range []int{1, 2} {
		if component.ClassOf(re.Errs[i]) != component.ClassEventPermanent {
			t.Fatalf("record %d: %v (%v), want event-permanent", i, re.Errs[i], component.ClassOf(re.Errs[i]))
		}
	}
	if recs := consumeAll(t, c.Addr(), 1, "there"); string(recs[0].Value) != "1" {
		t.Fatalf("record %q", recs[0].Value)
	}
}

// TestDeadLetterRecord: as a dead-letter sink the engine hands the
// original event as the payload and the failure as sluice-* headers; they
// are written as they are.
func TestDeadLetterRecord(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"dlq"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "dlq"})
	r := delivery.Record{Event: []byte(`{"id":"x"}`), Task: "t1", Stage: "sink", Err: component.EventPermanent(errors.New("rejected")), Attempts: 1,
		Pos: message.Position{Stream: "in", Partition: 0, Offset: 7}, Time: time.Now()}
	m := message.Message{Payload: r.Event, Event: r.Event, Headers: r.Headers(), Pos: r.Pos, Time: r.Time}
	if err := write(t, s, m); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, c.Addr(), 1, "dlq")[0]
	if string(got.Value) != `{"id":"x"}` {
		t.Fatalf("value %q", got.Value)
	}
	for k, want := range map[string]string{delivery.HeaderTask: "t1", delivery.HeaderStage: "sink", delivery.HeaderClass: "event_permanent", delivery.HeaderPosition: "in-0-7"} {
		if v, _ := header(got, k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
}

// TestConcurrentWrites: workers write at the same time; every record lands
// once and per-writer order holds within a partition.
func TestConcurrentWrites(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 3, Topics: []string{"cw"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "cw"})
	const writers, batches, per = 4, 10, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var msgs []message.Message
				for i := range per {
					m := msg(`{}`, fmt.Sprintf("%d-%03d", w, b*per+i))
					m.Key = []byte(strconv.Itoa(w)) // one writer = one key = one partition
					msgs = append(msgs, m)
				}
				if err := s.Write(context.Background(), msgs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs := consumeAll(t, c.Addr(), writers*batches*per, "cw")
	last := map[string]string{}
	for _, r := range recs {
		w, _, _ := strings.Cut(string(r.Value), "-")
		if prev, ok := last[w]; ok && prev >= string(r.Value) {
			t.Fatalf("writer %s out of order: %s after %s", w, r.Value, prev)
		}
		last[w] = string(r.Value)
	}
	if len(recs) != writers*batches*per {
		t.Fatalf("%d records", len(recs))
	}
}

// TestCloseUnblocksWrite: with no delivery timeout a Write waits for the
// brokers; Close ends it with retryable errors.
func TestCloseUnblocksWrite(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"cl"}})
	s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "cl", "delivery_timeout": "0s"})
	c.Cut()
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), []message.Message{msg(`{}`, "x")}) }()
	testkit.WaitFor(t, "the write to wait for the brokers", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cl != nil && s.cl.BufferedProduceRecords() > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = s.Close(ctx)
	select {
	case err := <-done:
		var re *component.RecordErrors
		if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassRetryable {
			t.Fatalf("Write after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write still blocked after Close")
	}
	if err := s.Write(context.Background(), []message.Message{msg(`{}`, "y")}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestOpenUnreachable(t *testing.T) {
	s := buildSink(t, testEnv(t), map[string]any{"brokers": []any{"127.0.0.1:1"}, "topic": "t", "dial_timeout": "200ms"})
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := s.Open(ctx); err == nil || component.ClassOf(err) != component.ClassRetryable {
		t.Fatalf("unreachable broker: %v (%v)", err, component.ClassOf(err))
	}
	var none Sink
	if err := none.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestExampleLoads: the Spec's example is valid TOML that decodes cleanly.
func TestExampleLoads(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "kafka")
	var doc map[string]map[string]any
	if _, err := toml.Decode(spec.Example, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := spec.New()
	p := component.NewProblems("sink")
	component.Decode(doc["sink"], cfg, p, "type")
	if p.Len() > 0 {
		t.Fatalf("example problems: %v", p.List())
	}
}
