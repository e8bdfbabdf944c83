package kafka

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// cluster starts a local cluster for the test.
func cluster(t testing.TB, o kafkadev.Options) *kafkadev.Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.StartWith(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	return c
}

// fastOpts shortens the client's timers so tests do not wait on defaults.
var fastOpts = []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.MetadataMaxAge(time.Second), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}

func testEnv(t testing.TB) component.Env {
	return component.Env{
		Task:     "t1",
		Dir:      t.TempDir(),
		MaxEvent: 1 << 20,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Metrics:  metrics.New(),
		Problems: component.NewProblems("sink"),
	}
}

// decodeConfig runs the loader's decoding and returns the problems.
func decodeConfig(tree map[string]any) (*Config, []component.Problem) {
	cfg := newConfig().(*Config)
	p := component.NewProblems("sink")
	component.Decode(tree, cfg, p)
	return cfg, p.List()
}

// buildSink decodes and builds a sink without opening it.
func buildSink(t testing.TB, env component.Env, tree map[string]any) *Sink {
	t.Helper()
	cfg, probs := decodeConfig(tree)
	if len(probs) > 0 {
		t.Fatalf("config problems: %v", probs)
	}
	c, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Sink)
	s.extra = fastOpts
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// progressBound bounds one step that waits on the cluster (an open, a
// produce, an offset fetch): testkit's wait, which only a hung test reaches.
var progressBound = testkit.Scale(testkit.DefaultWait)

// newSink builds and opens a sink.
func newSink(t testing.TB, env component.Env, tree map[string]any) *Sink {
	t.Helper()
	s := buildSink(t, env, tree)
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// consumeAll reads n records from topics, from the start of every
// partition, ordered by partition then offset.
func consumeAll(t testing.TB, addr string, n int, topics ...string) []*kgo.Record {
	t.Helper()
	return consumeWith(t, []kgo.Opt{kgo.SeedBrokers(addr)}, n, topics...)
}

func consumeWith(t testing.TB, opts []kgo.Opt, n int, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// msg builds a message whose original event is event and payload payload.
func msg(event, payload string) message.Message {
	return message.Message{Event: []byte(event), Payload: []byte(payload)}
}

func write(t testing.TB, s *Sink, msgs ...message.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Write(ctx, msgs)
}

func header(r *kgo.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

// metricValue reads a counter.
func metricValue(t testing.TB, c interface{ Value() float64 }) float64 {
	t.Helper()
	return c.Value()
}
