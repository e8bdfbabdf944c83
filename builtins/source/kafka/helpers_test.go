package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// cluster starts a local cluster for the test with topics of n partitions.
func cluster(t testing.TB, partitions int, topics ...string) *kafkadev.Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", partitions, topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	return c
}

// uniq returns a name unique to the test, for groups and topics.
func uniq(t testing.TB, prefix string) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%s-%d", prefix, name, rand.IntN(1e6))
}

// fastOpts shortens the client's timers so tests do not wait on defaults.
var fastOpts = []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}

// testEnv returns an Env for tests.
func testEnv(t testing.TB) component.Env {
	return component.Env{
		Task:     "t1",
		Dir:      t.TempDir(),
		MaxEvent: 1 << 20,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Metrics:  metrics.New(),
		Problems: component.NewProblems("source"),
	}
}

// decode runs the loader's decoding on tree and fails on any problem.
func decode(t testing.TB, tree map[string]any) *Config {
	t.Helper()
	cfg := newConfig().(*Config)
	p := component.NewProblems("source")
	component.Decode(tree, cfg, p)
	if p.Len() > 0 {
		t.Fatalf("config problems: %v", p.List())
	}
	return cfg
}

// newSource decodes tree, builds and opens a source; Close runs at cleanup.
func newSource(t testing.TB, env component.Env, tree map[string]any) *Source {
	t.Helper()
	cfg := decode(t, tree)
	c, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Source)
	s.extra = fastOpts
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// baseTree is the config of a source on c consuming topic in group.
func baseTree(c *kafkadev.Cluster, topic, group string) map[string]any {
	return map[string]any{
		"brokers":            []any{c.Addr()},
		"topics":             []any{topic},
		"group":              group,
		"offset":             "earliest",
		"heartbeat_interval": "100ms",
		"session_timeout":    "6s",
		"rebalance_timeout":  "5s",
		"revoke_timeout":     "2s",
		"fetch_max_wait":     "100ms",
	}
}

// produce writes recs synchronously.
func produce(t testing.TB, addr string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// progressBound bounds one step that waits on the cluster (an open, a
// produce, an offset fetch): testkit's wait, which only a hung test reaches.
var progressBound = testkit.Scale(testkit.DefaultWait)

// readBatches reads until n records arrived, or fails after progressBound.
func readBatches(t testing.TB, s *Source, n int) []component.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	var out []component.Batch
	got := 0
	for got < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d records: %v", got, n, err)
		}
		out = append(out, b)
		got += len(b.Messages)
	}
	return out
}

// committed returns the group's committed offsets of topic by partition.
func committed(t testing.TB, addr, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err == nil {
			out[p] = o.At
		}
	}
	return out
}

// commitRound runs one commit of s at once, as its committer does every
// commit_interval: what the source would commit is committed when it
// returns. A test checking that something is NOT committed runs one instead
// of waiting a few intervals and hoping one ran.
func commitRound(t testing.TB, s *Source) {
	t.Helper()
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	if err := s.commit(context.Background(), cl, nil, "test"); err != nil {
		t.Fatal(err)
	}
}

// collector records what a consumer delivered, by position.
type collector struct {
	mu   sync.Mutex
	seen map[message.Position]int
}

func (c *collector) add(b component.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[message.Position]int{}
	}
	for _, m := range b.Messages {
		c.seen[m.Pos]++
	}
}

func (c *collector) has(p message.Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[p] > 0
}

// lowest returns the lowest offset delivered from partition p, or -1.
func (c *collector) lowest(p int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := int64(-1)
	for pos := range c.seen {
		if pos.Partition == p && (low < 0 || pos.Offset < low) {
			low = pos.Offset
		}
	}
	return low
}

// consume reads from s in a goroutine and acks each batch after delay,
// until ctx ends.
func consume(ctx context.Context, s *Source, col *collector, delay time.Duration) chan error {
	done := make(chan error, 1)
	go func() {
		for {
			b, err := s.Read(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrClosed) {
					err = nil
				}
				done <- err
				return
			}
			col.add(b)
			if delay > 0 {
				time.AfterFunc(delay, func() { b.Ack(nil) })
			} else {
				b.Ack(nil)
			}
		}
	}()
	return done
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, c interface{ Value() float64 }) float64 {
	t.Helper()
	return c.Value()
}

// TestDuplicatesWindowPast2To31: the largest max_in_flight and
// max_poll_records give a window of 8.2 billion records, past what a 32-bit
// int holds: it must stay a bound (math.MaxInt there), not wrap to a
// negative number that means no bound. Run on armv7 by make test-arm32-ci.
func TestDuplicatesWindowPast2To31(t *testing.T) {
	cfg := decode(t, map[string]any{"brokers": []any{"127.0.0.1:9"}, "topics": []any{"t"}, "max_poll_records": int64(1_000_000)})
	env := testEnv(t)
	env.MaxInFlight = 4096
	c, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(min(int64(2)*4096*1_000_000, math.MaxInt)); c.(*Source).window != want {
		t.Fatalf("window = %d, want %d (2 x max_in_flight x max_poll_records, at most math.MaxInt)", c.(*Source).window, want)
	}
}

// zstdBatch returns a v2 record batch of n records, each with a value of
// size bytes of 'x', zstd-compressed as a producer would send it. The values
// are streamed into the compressor, so the test never holds them: a batch
// of a few KiB can hold hundreds of MiB.
func zstdBatch(t testing.TB, n int, size int64) []byte {
	t.Helper()
	var comp bytes.Buffer
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	// Each record, but its value bytes: attributes, timestamp delta,
	// offset delta, null key, value length.
	heads := make([][]byte, n)
	total := int64(0)
	for i := range n {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, 0)
		body = binary.AppendVarint(body, int64(i))
		body = binary.AppendVarint(body, -1)
		body = binary.AppendVarint(body, size)
		bodyLen := int64(len(body)) + size + 1 // + value + header count
		heads[i] = append(binary.AppendVarint(nil, bodyLen), body...)
		total += int64(len(heads[i])) + size + 1
	}
	enc.ResetContentSize(&comp, total) // the frame declares its size, as zstd's own tools write it
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	for i := range n {
		enc.Write(heads[i])
		for left := size; left > 0; {
			k := min(left, int64(len(chunk)))
			if _, err := enc.Write(chunk[:k]); err != nil {
				t.Fatal(err)
			}
			left -= k
		}
		enc.Write(binary.AppendVarint(nil, 0)) // no headers
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return rawBatch(int32(n), 4, comp.Bytes())
}

// rawBatch returns a v2 record batch of n records whose records section is
// records, compressed with the codec in attributes (4: zstd), with a valid
// CRC: what the brokers store as they got it.
func rawBatch(n int32, attributes int16, records []byte) []byte {
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attributes,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           n,
		Records:              records,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// produceRaw appends a raw record batch to topic partition 0.
func produceRaw(t testing.TB, c *kafkadev.Cluster, topic string, batch []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := c.ProduceBatch(ctx, topic, batch); err != nil {
		t.Fatal(err)
	}
}
