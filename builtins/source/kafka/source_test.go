package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestRegister(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindSource, "kafka")
	if !ok {
		t.Fatal("kafka source not registered")
	}
	fields, err := component.FieldsOf(spec.New())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fields {
		names[f.Name] = true
		if f.Doc == "" {
			t.Errorf("key %q has no doc", f.Name)
		}
	}
	for _, k := range []string{"brokers", "topics", "topics_regex", "group", "offset", "concurrency", "order", "value_format", "max_poll_records", "sasl", "tls"} {
		if !names[k] {
			t.Errorf("key %q missing", k)
		}
	}
}

// TestEventEndToEnd: a record produced to kfake comes out of Read as the
// golden event, with the message metadata filled in.
func TestEventEndToEnd(t *testing.T) {
	c := cluster(t, 8, "clicks")
	produce(t, c.Addr(), &kgo.Record{Topic: "clicks", Partition: 7, Timestamp: time.UnixMilli(sampleTS), Key: []byte("user-42"),
		Value: []byte(`{"page":"/home","ms":31}`), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "tag", Value: []byte("a")}, {Key: "tag", Value: []byte("b")}}})
	s := newSource(t, testEnv(t), baseTree(c, "clicks", uniq(t, "g")))
	bs := readBatches(t, s, 1)
	b := bs[0]
	if b.Lane != "clicks/7" || len(b.Messages) != 1 {
		t.Fatalf("batch lane %q with %d messages", b.Lane, len(b.Messages))
	}
	m := b.Messages[0]
	want := strings.Replace(envelope, "127.0.0.1:9092", c.Addr(), 1)
	want = strings.Replace(want, `"id":"clicks-7-25"`, `"id":"clicks-7-0"`, 1)
	want = strings.Replace(want, `"offset":25`, `"offset":0`, 1)
	want += `"headers":{"trace":"abc","tag":["a","b"]},"key":"user-42","value":{"page":"/home","ms":31}}}`
	if string(m.Payload) != want {
		t.Fatalf("payload\n got %s\nwant %s", m.Payload, want)
	}
	if &m.Event[0] != &m.Payload[0] || string(m.Key) != "user-42" || m.Time.UnixMilli() != sampleTS {
		t.Fatalf("metadata: key %q time %v", m.Key, m.Time)
	}
	if m.Pos != (message.Position{Stream: "clicks", Partition: 7, Offset: 0}) || m.Pos.String() != "clicks-7-0" {
		t.Fatalf("position %+v", m.Pos)
	}
	if len(m.Headers) != 3 || m.Headers[2].Key != "tag" || string(m.Headers[2].Value) != "b" {
		t.Fatalf("headers %+v", m.Headers)
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Fatal("payload slice must be capped so appends cannot clobber the next event")
	}
	b.Ack(nil)
}

// TestStartOffsets: where a new group starts.
func TestStartOffsets(t *testing.T) {
	c := cluster(t, 1, "t")
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	var old []*kgo.Record
	for i := range 3 {
		old = append(old, &kgo.Record{Topic: "t", Timestamp: base.Add(time.Duration(i) * time.Hour), Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), old...)

	t.Run("earliest", func(t *testing.T) {
		tree := baseTree(c, "t", uniq(t, "g"))
		s := newSource(t, testEnv(t), tree)
		b := readBatches(t, s, 3)
		if first := b[0].Messages[0].Pos.Offset; first != 0 {
			t.Fatalf("first offset %d, want 0", first)
		}
	})
	t.Run("time", func(t *testing.T) {
		tree := baseTree(c, "t", uniq(t, "g"))
		tree["offset"] = base.Add(time.Hour).Format(time.RFC3339Nano) // exactly record 1's time: at or after
		s := newSource(t, testEnv(t), tree)
		b := readBatches(t, s, 2)
		if first := b[0].Messages[0]; first.Pos.Offset != 1 || string(first.Payload[len(first.Payload)-4:]) != `:1}}` {
			t.Fatalf("first record %s, want offset 1", first.Payload)
		}
	})
	t.Run("latest", func(t *testing.T) {
		tree := baseTree(c, "t", uniq(t, "g"))
		tree["offset"] = "latest"
		s := newSource(t, testEnv(t), tree)
		// When exactly the group resolves "latest" is not observable, so
		// keep producing until something arrives: it must be new.
		ctx, cancel := context.WithTimeout(context.Background(), progressBound)
		defer cancel()
		stop := make(chan struct{})
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				produce(t, c.Addr(), &kgo.Record{Topic: "t", Value: []byte("new")})
			}
		}()
		b, err := s.Read(ctx)
		close(stop)
		if err != nil {
			t.Fatal(err)
		}
		if off := b.Messages[0].Pos.Offset; off < 3 {
			t.Fatalf("latest read old record at offset %d", off)
		}
	})
}

// TestValueFormats: value_format end to end, and the non-JSON counter.
func TestValueFormats(t *testing.T) {
	c := cluster(t, 1, "v")
	produce(t, c.Addr(),
		&kgo.Record{Topic: "v", Value: []byte(`{"a":1}`)},
		&kgo.Record{Topic: "v", Value: []byte(`not json`)},
		&kgo.Record{Topic: "v", Value: []byte{0xff, 0x01}})
	tests := []struct {
		format string
		want   []string
		bad    float64
	}{
		{"json", []string{`{"a":1}`, `"not json"`, `"\ufffd\u0001"`}, 2},
		{"text", []string{`"{\"a\":1}"`, `"not json"`, `"\ufffd\u0001"`}, 0},
		{"base64", []string{`"eyJhIjoxfQ=="`, `"bm90IGpzb24="`, `"/wE="`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			tree := baseTree(c, "v", uniq(t, "g"))
			tree["value_format"] = tt.format
			env := testEnv(t)
			s := newSource(t, env, tree)
			var got []string
			for _, b := range readBatches(t, s, 3) {
				for _, m := range b.Messages {
					var ev struct {
						Data struct {
							Value json.RawMessage `json:"value"`
						} `json:"data"`
					}
					if err := json.Unmarshal(m.Payload, &ev); err != nil {
						t.Fatal(err)
					}
					got = append(got, string(ev.Data.Value))
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("values %v, want %v", got, tt.want)
			}
			if n := metricValue(t, s.m.nonJSON); n != tt.bad {
				t.Fatalf("non-JSON counter %v, want %v", n, tt.bad)
			}
			if n := metricValue(t, s.m.records); n != 3 {
				t.Fatalf("records counter %v, want 3", n)
			}
		})
	}
}

// TestOversizeEvent: an event over the limit carries Err and the raw value,
// for the engine's dead-letter path at stage decode.
func TestOversizeEvent(t *testing.T) {
	c := cluster(t, 1, "big")
	big := strings.Repeat("x", 2000)
	produce(t, c.Addr(), &kgo.Record{Topic: "big", Value: []byte(big)}, &kgo.Record{Topic: "big", Value: []byte("ok")})
	env := testEnv(t)
	env.MaxEvent = 1000
	s := newSource(t, env, baseTree(c, "big", uniq(t, "g")))
	var msgs []message.Message
	for _, b := range readBatches(t, s, 2) {
		msgs = append(msgs, b.Messages...)
	}
	if msgs[0].Err == nil || !strings.Contains(msgs[0].Err.Error(), "exceeds the 1000-byte") || string(msgs[0].Payload) != big {
		t.Fatalf("oversize record: err %v payload %d bytes", msgs[0].Err, len(msgs[0].Payload))
	}
	if msgs[1].Err != nil {
		t.Fatalf("small record failed: %v", msgs[1].Err)
	}
}

// TestOversizedValueIsNotEncoded: a record whose event is sure to exceed
// max_event_size is refused before it is encoded. It was encoded first: a
// buffer the size of the value, grown to 6 times it for a value of NUL
// bytes (each written \u0000), only to be dropped for the raw value.
func TestOversizedValueIsNotEncoded(t *testing.T) {
	for _, format := range []string{FormatText, FormatJSON, FormatBase64} {
		cfg := decode(t, map[string]any{"brokers": []any{"127.0.0.1:9092"}, "topics": []any{"big"}, "value_format": format})
		env := testEnv(t)
		c, err := build(cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		s := c.(*Source)
		value := make([]byte, 8<<20)
		recs := []*kgo.Record{{Topic: "big", Value: value}, {Topic: "big", Offset: 1, Value: []byte(`{"ok":1}`)}}
		st := &partState{tp: tp{"big", 0}, lane: "big/0"}
		s.encode(st, recs[1:]) // warm up the topic's envelope
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b := s.encode(st, recs)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: encoding a batch with an 8 MiB value over the 1 MiB event limit allocated %d KiB", format, alloc>>10)
		}
		m := b.Messages[0]
		if m.Err == nil || !strings.Contains(m.Err.Error(), "exceeds the 1048576-byte event limit") || len(m.Payload) != len(value) || &m.Payload[0] != &value[0] {
			t.Fatalf("%s: oversized record: err %v, payload of %d bytes", format, m.Err, len(m.Payload))
		}
		if m.Pos.Offset != 0 || b.Messages[1].Err != nil || !strings.Contains(string(b.Messages[1].Payload), `"offset":1`) {
			t.Fatalf("%s: the next record: %+v", format, b.Messages[1])
		}
	}
}

// TestJSONValueTrimmedUnderTheLimit: a JSON value is embedded without the
// whitespace around it, so a value larger than max_event_size with that
// whitespace is still an event under the limit, not refused unread.
func TestJSONValueTrimmedUnderTheLimit(t *testing.T) {
	cfg := decode(t, map[string]any{"brokers": []any{"127.0.0.1:9092"}, "topics": []any{"t"}})
	env := testEnv(t)
	env.MaxEvent = 1000
	c, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Source)
	value := []byte(strings.Repeat(" ", 3000) + `{"a":1}` + strings.Repeat("\n", 3000))
	b := s.encode(&partState{tp: tp{"t", 0}, lane: "t/0"}, []*kgo.Record{{Topic: "t", Value: value}})
	if m := b.Messages[0]; m.Err != nil || !strings.Contains(string(m.Payload), `"value":{"a":1}`) {
		t.Fatalf("err %v, payload %s", m.Err, m.Payload)
	}
}

// TestCompressionBombIsNotDecompressed: a producer writes one record batch
// of 53 KB that decompresses to 256 MiB. The source set no bound of its
// own, so franz-go's 1 GiB per batch applied: the whole value was
// materialised (520 MiB allocated), for an event dead-lettered anyway for
// being over max_event_size (1 MiB). The batch is now refused before it
// is decompressed: the zstd frame declares its size.
func TestCompressionBombIsNotDecompressed(t *testing.T) {
	c := cluster(t, 1, "bomb")
	const bombSize = 256 << 20
	batch := zstdBatch(t, 1, bombSize)
	t.Logf("compressed batch: %d bytes for a %d MiB value", len(batch), bombSize>>20)
	produceRaw(t, c, "bomb", batch)
	produce(t, c.Addr(), &kgo.Record{Topic: "bomb", Partition: 0, Value: []byte(`{"after":1}`)})

	tree := baseTree(c, "bomb", uniq(t, "g"))
	tree["fetch_max_bytes"] = "1MiB"
	tree["fetch_max_partition_bytes"] = "1MiB"
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := newSource(t, testEnv(t), tree)
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	seen := map[int64]bool{}
	for !seen[1] {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		for _, m := range b.Messages {
			seen[m.Pos.Offset] = true
		}
		b.Ack(nil)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB", alloc>>10)
	const budget = 64 << 20 // fetch_max_bytes + max_event_size, with lots of room
	if alloc > budget {
		t.Fatalf("reading a %d-byte compressed batch allocated %d MiB (budget %d MiB for fetch_max_bytes = 1 MiB and max_event_size = 1 MiB): "+
			"a compression bomb is fully decompressed", len(batch), alloc>>20, budget>>20)
	}
}

// readUntil reads and acknowledges batches of s until it has read the
// record at offset off of partition 0, and returns every message read.
func readUntil(t *testing.T, s *Source, off int64) []message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	var out []message.Message
	for {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d messages: %v", len(out), err)
		}
		out = append(out, b.Messages...)
		b.Ack(nil)
		if b.Messages[len(b.Messages)-1].Pos.Offset >= off {
			return out
		}
	}
}

// TestBatchPastDecompressLimitIsDeadLettered: a batch that decompresses
// past max_decompressed_batch_bytes makes franz-go stop its partition
// until the offsets are moved past it. The source took the error for a
// transient fetch error ("the client retries"): the batch was neither
// delivered nor dead-lettered, no later record of the partition was read,
// and the task looked healthy. The batch's offsets now come out as one
// failed event naming them, the partition goes on after it, and the
// offsets are committed once it is acknowledged.
func TestBatchPastDecompressLimitIsDeadLettered(t *testing.T) {
	c := cluster(t, 1, "bomb")
	produce(t, c.Addr(), &kgo.Record{Topic: "bomb", Partition: 0, Value: []byte(`{"before":1}`)})
	produceRaw(t, c, "bomb", zstdBatch(t, 3, 512<<10)) // offsets 1-3, 1.5 MiB
	produce(t, c.Addr(), &kgo.Record{Topic: "bomb", Partition: 0, Value: []byte(`{"after":1}`)})
	group := uniq(t, "g")
	tree := baseTree(c, "bomb", group)
	tree["max_decompressed_batch_bytes"] = "1MiB"
	s := newSource(t, testEnv(t), tree)
	msgs := readUntil(t, s, 4)
	if len(msgs) != 3 || msgs[0].Pos.Offset != 0 || msgs[0].Err != nil || msgs[2].Pos.Offset != 4 || msgs[2].Err != nil {
		t.Fatalf("read %+v, want record 0, the failed batch, record 4", msgs)
	}
	m := msgs[1]
	if m.Pos != (message.Position{Stream: "bomb", Partition: 0, Offset: 1}) || m.Err == nil || len(m.Payload) != 0 {
		t.Fatalf("failed batch: %+v", m)
	}
	for _, want := range []string{"bomb-0-1 to bomb-0-3", "more than 1048576 bytes", "max_decompressed_batch_bytes", `topic "bomb" partition 0 back to 1`} {
		if !strings.Contains(m.Err.Error(), want) {
			t.Errorf("reason %q does not say %q", m.Err, want)
		}
	}
	commitRound(t, s)
	if got := committed(t, c.Addr(), group, "bomb")[0]; got != 5 {
		t.Fatalf("committed %d, want 5: the failed batch was acknowledged", got)
	}
}

// TestCorruptBatchIsDeadLettered: a batch whose compressed data cannot be
// decompressed made franz-go fetch it again and again, never past it: the
// partition stalled and the source logged a warning per fetch. It is now
// skipped as a batch past the limit is, with the decoder's reason.
func TestCorruptBatchIsDeadLettered(t *testing.T) {
	c := cluster(t, 1, "bad")
	produceRaw(t, c, "bad", rawBatch(2, 4, []byte("this is not zstd data at all"))) // offsets 0-1
	produce(t, c.Addr(), &kgo.Record{Topic: "bad", Partition: 0, Value: []byte(`{"after":1}`)})
	group := uniq(t, "g")
	s := newSource(t, testEnv(t), baseTree(c, "bad", group))
	msgs := readUntil(t, s, 2)
	if len(msgs) != 2 || msgs[1].Pos.Offset != 2 || msgs[1].Err != nil {
		t.Fatalf("read %+v, want the failed batch, then record 2", msgs)
	}
	m := msgs[0]
	if m.Pos.Offset != 0 || m.Err == nil || !strings.Contains(m.Err.Error(), "bad-0-0 to bad-0-1") ||
		!strings.Contains(m.Err.Error(), "cannot be decompressed") || !strings.Contains(m.Err.Error(), "magic number mismatch") {
		t.Fatalf("failed batch: pos %v, err %v", m.Pos, m.Err)
	}
	commitRound(t, s)
	if got := committed(t, c.Addr(), group, "bad")[0]; got != 3 {
		t.Fatalf("committed %d, want 3", got)
	}
}

// TestSkippedBatchIsReadAgainAfterRewind: the failed event of a skipped
// batch that the task blocks on (nacked) holds the partition's commits
// like any record; after a rewind the batch is read again and fails again.
func TestSkippedBatchIsReadAgainAfterRewind(t *testing.T) {
	c := cluster(t, 1, "bomb")
	produceRaw(t, c, "bomb", zstdBatch(t, 2, 1<<20)) // offsets 0-1
	produce(t, c.Addr(), &kgo.Record{Topic: "bomb", Partition: 0, Value: []byte(`{"after":1}`)})
	group := uniq(t, "g")
	tree := baseTree(c, "bomb", group)
	tree["max_decompressed_batch_bytes"] = "1MiB"
	s := newSource(t, testEnv(t), tree)
	b := readBatches(t, s, 1)[0]
	if b.Messages[0].Err == nil || b.Messages[0].Pos.Offset != 0 {
		t.Fatalf("first batch: %+v", b.Messages)
	}
	b.Ack(errors.New("task blocked"))
	commitRound(t, s)
	if got, ok := committed(t, c.Addr(), group, "bomb")[0]; ok {
		t.Fatalf("committed %d past a nacked batch", got)
	}
	if err := s.Rewind(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs := readUntil(t, s, 2)
	if len(msgs) != 2 || msgs[0].Err == nil || msgs[0].Pos.Offset != 0 || msgs[1].Pos.Offset != 2 || msgs[1].Err != nil {
		t.Fatalf("after the rewind read %+v, want the failed batch again, then record 2", msgs)
	}
	commitRound(t, s)
	if got := committed(t, c.Addr(), group, "bomb")[0]; got != 3 {
		t.Fatalf("committed %d, want 3", got)
	}
}

// TestCommitOnlyAckedPrefix: batches acknowledged out of order commit only
// the contiguous prefix, and a nacked batch stops the prefix.
func TestCommitOnlyAckedPrefix(t *testing.T) {
	c := cluster(t, 1, "p")
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, &kgo.Record{Topic: "p", Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)
	group := uniq(t, "g")
	tree := baseTree(c, "p", group)
	tree["max_poll_records"] = int64(4)
	tree["commit_interval"] = "100ms"
	s := newSource(t, testEnv(t), tree)
	bs := readBatches(t, s, 40)
	if len(bs) < 6 {
		t.Fatalf("want at least 6 batches of at most 4 records, got %d", len(bs))
	}
	end := func(i int) int64 { return bs[i].Messages[len(bs[i].Messages)-1].Pos.Offset + 1 }
	settle := func() { commitRound(t, s) }
	check := func(want int64, what string) {
		t.Helper()
		if want < 0 {
			settle()
			if got, ok := committed(t, c.Addr(), group, "p")[0]; ok {
				t.Fatalf("%s: committed %d, want nothing", what, got)
			}
			return
		}
		testkit.WaitFor(t, what, func() bool { return committed(t, c.Addr(), group, "p")[0] == want })
		settle()
		if got := committed(t, c.Addr(), group, "p")[0]; got != want {
			t.Fatalf("%s: committed %d, want %d", what, got, want)
		}
	}
	bs[1].Ack(nil)
	bs[2].Ack(nil)
	check(-1, "batches 1-2 acked before batch 0")
	bs[0].Ack(nil)
	check(end(2), "batches 0-2 acked")
	bs[3].Ack(errors.New("sink down"))
	bs[4].Ack(nil)
	bs[5].Ack(nil)
	check(end(2), "batch 3 nacked")
	// Close commits nothing more: the prefix ends at the nack.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c.Addr(), group, "p")[0]; got != end(2) {
		t.Fatalf("after close committed %d, want %d", got, end(2))
	}
	// A new member resumes right after the prefix.
	s2 := newSource(t, testEnv(t), tree)
	b := readBatches(t, s2, 1)
	if off := b[0].Messages[0].Pos.Offset; off != end(2) {
		t.Fatalf("restart read offset %d, want %d", off, end(2))
	}
}

// TestCloseCommits: acked offsets are committed by Close even when the
// periodic commit never ran.
func TestCloseCommits(t *testing.T) {
	c := cluster(t, 3, "c")
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Topic: "c", Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)
	group := uniq(t, "g")
	tree := baseTree(c, "c", group)
	tree["commit_interval"] = "1h"
	s := newSource(t, testEnv(t), tree)
	for _, b := range readBatches(t, s, 30) {
		b.Ack(nil)
	}
	if got := committed(t, c.Addr(), group, "c"); len(got) != 0 {
		t.Fatalf("committed before close: %v", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := committed(t, c.Addr(), group, "c")
	for p := range int32(3) {
		if got[p] != 10 {
			t.Fatalf("partition %d committed %d, want 10 (all: %v)", p, got[p], got)
		}
	}
	if _, err := s.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// TestCloseUnblocksRead: a Read waiting for records returns on Close.
func TestCloseUnblocksRead(t *testing.T) {
	c := cluster(t, 1, "u")
	s := newSource(t, testEnv(t), baseTree(c, "u", uniq(t, "g")))
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(context.Background())
		done <- err
	}()
	testkit.WaitBlocked(t, "(*Source).Read")
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// TestRebalance: a second member joins the group and partitions move.
// The first member holds the first batch of every partition: those of even
// partitions it finishes while the rebalance waits (revoke_timeout), so they
// are committed before the handover and not read again; those of odd
// partitions it never finishes, so they are not committed and the new owner
// reads them again. Nothing is lost and the committed offsets end at the
// log end.
func TestRebalance(t *testing.T) {
	const parts, perPart = 4, 50
	c := cluster(t, parts, "r")
	var recs []*kgo.Record
	for i := range parts * perPart {
		recs = append(recs, &kgo.Record{Topic: "r", Partition: int32(i % parts), Value: []byte(strconv.Itoa(i))})
	}
	produce(t, c.Addr(), recs...)
	group := uniq(t, "g")
	tree := baseTree(c, "r", group)
	tree["max_poll_records"] = int64(10)
	tree["commit_interval"] = "100ms"
	tree["revoke_timeout"] = "3s"

	a := newSource(t, testEnv(t), tree)
	var colA, colB collector
	held := map[int32]component.Batch{}
	for len(held) < parts {
		for _, b := range readBatches(t, a, 1) {
			colA.add(b)
			p := b.Messages[0].Pos.Partition
			if _, ok := held[p]; ok {
				b.Ack(nil)
			} else {
				held[p] = b
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	doneA := consume(ctx, a, &colA, 0)
	b := newSource(t, testEnv(t), tree)
	doneB := consume(ctx, b, &colB, 0)
	// Finish the even partitions' held batches while the rebalance waits
	// for what is in flight.
	go func() {
		if testkit.Eventually(testkit.DefaultWait, func() bool { return testkit.Blocked("(*Source).awaitInFlight") }) {
			held[0].Ack(nil)
			held[2].Ack(nil)
		}
	}()
	owned := func(s *Source) map[int32]bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[int32]bool{}
		for k := range s.parts {
			out[k.part] = true
		}
		return out
	}
	testkit.WaitFor(t, "both members own partitions", func() bool {
		na, nb := len(owned(a)), len(owned(b))
		return na > 0 && nb > 0 && na+nb == parts
	})
	testkit.WaitFor(t, "every record delivered", func() bool {
		n := 0
		for i := range parts * perPart {
			pos := message.Position{Stream: "r", Partition: int32(i % parts), Offset: int64(i / parts)}
			if colA.has(pos) || colB.has(pos) {
				n++
			}
		}
		return n == parts*perPart
	})
	moved := owned(b)
	t.Logf("partitions moved to the second member: %v", moved)
	// A had read every partition to its end before the second member
	// joined, so what the new owner reads shows what was committed on
	// revoke.
	for p := range moved {
		h := held[p]
		first := h.Messages[0].Pos
		if p%2 == 1 {
			testkit.WaitFor(t, fmt.Sprintf("partition %d: the new owner reads the unfinished batch at %s again", p, first), func() bool {
				return colB.has(first) && colB.has(message.Position{Stream: "r", Partition: p, Offset: perPart - 1})
			})
		}
	}
	// An even partition was finished in the wait, so the revoke committed
	// it to its end and the new owner has nothing to read again.
	got := committed(t, c.Addr(), group, "r")
	for p := range moved {
		if p%2 == 0 {
			if got[p] != perPart {
				t.Errorf("partition %d: finished before the handover, yet committed at %d, not its end %d", p, got[p], perPart)
			}
			if low := colB.lowest(p); low >= 0 {
				t.Errorf("partition %d: finished before the handover, yet the new owner read it again from offset %d", p, low)
			}
		}
	}
	for p := range owned(a) {
		if p%2 == 1 {
			held[p].Ack(nil) // still the first member's: finishing it lets it commit
		}
	}
	testkit.WaitFor(t, "offsets committed to the log end", func() bool {
		got := committed(t, c.Addr(), group, "r")
		for p := range int32(parts) {
			if got[p] != perPart {
				return false
			}
		}
		return true
	})
	cancel()
	for _, d := range []chan error{doneA, doneB} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	for p := range moved {
		if p%2 == 1 {
			held[p].Ack(nil) // a late ack for a partition given away changes nothing
		}
	}
	for _, s := range []*Source{a, b} {
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got = committed(t, c.Addr(), group, "r")
	for p := range int32(parts) {
		if got[p] != perPart {
			t.Fatalf("after close partition %d committed %d, want %d", p, got[p], perPart)
		}
	}
}

// TestPauseResume: a paused source reads nothing but stays in its group.
func TestPauseResume(t *testing.T) {
	c := cluster(t, 1, "pz")
	group := uniq(t, "g")
	s := newSource(t, testEnv(t), baseTree(c, "pz", group))
	produce(t, c.Addr(), &kgo.Record{Topic: "pz", Value: []byte("1")})
	readBatches(t, s, 1)[0].Ack(nil)
	s.Pause()
	produce(t, c.Addr(), &kgo.Record{Topic: "pz", Value: []byte("2")})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	b, err := s.Read(ctx)
	cancel()
	if err == nil {
		t.Fatalf("paused source read %d records", len(b.Messages))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dg, err := kadm.NewClient(cl).DescribeGroups(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	if g := dg[group]; len(g.Members) != 1 || g.State != "Stable" {
		t.Fatalf("paused member left its group: state %q, %d members", g.State, len(g.Members))
	}
	s.Resume()
	if b := readBatches(t, s, 1); b[0].Messages[0].Pos.Offset != 1 {
		t.Fatalf("after resume read offset %d", b[0].Messages[0].Pos.Offset)
	}
}

// TestOpenErrors: a missing topic stops the task; an unreachable broker is
// retryable.
func TestOpenErrors(t *testing.T) {
	c := cluster(t, 1, "exists")
	open := func(tree map[string]any) error {
		cfg := decode(t, tree)
		src, err := build(cfg, testEnv(t))
		if err != nil {
			t.Fatal(err)
		}
		s := src.(*Source)
		defer s.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), progressBound)
		defer cancel()
		return s.Open(ctx)
	}
	err := open(baseTree(c, "nope", "g"))
	if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing topic: %v (class %v)", err, component.ClassOf(err))
	}
	tree := baseTree(c, "exists", "g")
	tree["brokers"] = []any{"127.0.0.1:1"}
	tree["dial_timeout"] = "200ms"
	err = open(tree)
	if err == nil || component.ClassOf(err) != component.ClassRetryable {
		t.Fatalf("unreachable broker: %v (class %v)", err, component.ClassOf(err))
	}
	// Close without Open is fine.
	cfg := decode(t, baseTree(c, "exists", "g"))
	src, _ := build(cfg, testEnv(t))
	if err := src.(*Source).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTopicsRegex consumes every topic the expression matches.
func TestTopicsRegex(t *testing.T) {
	c := cluster(t, 1, "orders-eu", "orders-us", "other")
	produce(t, c.Addr(), &kgo.Record{Topic: "orders-eu", Value: []byte("1")}, &kgo.Record{Topic: "other", Value: []byte("x")}, &kgo.Record{Topic: "orders-us", Value: []byte("2")})
	tree := baseTree(c, "", uniq(t, "g"))
	delete(tree, "topics")
	tree["topics_regex"] = "^orders-"
	s := newSource(t, testEnv(t), tree)
	lanes := map[string]bool{}
	for _, b := range readBatches(t, s, 2) {
		lanes[b.Lane] = true
	}
	if !lanes["orders-eu/0"] || !lanes["orders-us/0"] || len(lanes) != 2 {
		t.Fatalf("lanes %v", lanes)
	}
}

// TestExampleLoads: the Spec's example is valid TOML that decodes cleanly.
func TestExampleLoads(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSource, "kafka")
	var doc map[string]map[string]any
	if _, err := toml.Decode(spec.Example, &doc); err != nil {
		t.Fatal(err)
	}
	p := component.NewProblems("source")
	component.Decode(doc["source"], spec.New(), p, "type")
	if p.Len() > 0 {
		t.Fatalf("example problems: %v", p.List())
	}
}

func TestConfigProblems(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"brokers": []any{"127.0.0.1:9092"}, "topics": []any{"t"}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		tree map[string]any
		want []string
	}{
		{"ok", base(), nil},
		{"ok regex and time", base("topics", nil, "topics_regex", "^a-", "offset", "2024-05-01T00:00:00Z"), nil},
		{"no topics", base("topics", nil), []string{`source: missing required key "topics"`}},
		{"both", base("topics_regex", "x"), []string{"source.topics_regex: topics and topics_regex are exclusive"}},
		{"bad topic", base("topics", []any{"a/b"}), []string{`source.topics[0]: invalid topic name "a/b"`}},
		{"bad regex", base("topics", nil, "topics_regex", "("), []string{"source.topics_regex: invalid regular expression"}},
		{"bad offset", base("offset", "yesterday"), []string{`source.offset: invalid offset "yesterday"`}},
		{"concurrency", base("concurrency", int64(33)), []string{"source.concurrency: value 33 is above the maximum 32"}},
		{"value format", base("value_format", "avro"), []string{"source.value_format: invalid value"}},
		{"commit interval", base("commit_interval", "10ms"), []string{"source.commit_interval: must be at least 100ms"}},
		{"revoke vs rebalance", base("revoke_timeout", "2m"), []string{"source.revoke_timeout: must be shorter than rebalance_timeout"}},
		{"heartbeat", base("heartbeat_interval", "1m"), []string{"source.heartbeat_interval: must be shorter than session_timeout"}},
		{"unknown key", base("topic", "t"), []string{`source.topic: unknown key "topic" (did you mean "topics"?)`}},
		{"decompressed batch", base("max_decompressed_batch_bytes", "3GiB"), []string{"source.max_decompressed_batch_bytes: must be between 1 byte and 2GiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newConfig()
			p := component.NewProblems("source")
			component.Decode(tt.tree, cfg, p)
			var got []string
			for _, pr := range p.List() {
				got = append(got, pr.PathString()+": "+pr.Msg)
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
