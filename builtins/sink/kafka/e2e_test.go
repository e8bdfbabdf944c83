package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	sinkkafka "github.com/sluicehq/sluice/builtins/sink/kafka"
	srckafka "github.com/sluicehq/sluice/builtins/source/kafka"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// runTask loads a task through the real loader and runs it with the real
// engine until ctx ends.
func runTask(t *testing.T, ctx context.Context, dir, text string) (engine.Stats, error) {
	t.Helper()
	run, _, done := startTask(t, ctx, dir, text, engine.Options{})
	err := <-done
	return run.Stats(), err
}

// startTask loads the task text (the Kafka source and sink registered, the
// exactly_once check on) from a task file in dir, and runs it with the real
// engine until ctx ends: done gets Run's error. opts' logger and metrics
// are the test's, its shutdown timeout 5 s unless set.
func startTask(t *testing.T, ctx context.Context, dir, text string, opts engine.Options) (run *engine.Task, ms *metrics.Set, done <-chan error) {
	t.Helper()
	return startTaskLogging(t, ctx, dir, text, opts, io.Discard)
}

// startTaskLogging is startTask that also writes the task's log (warnings
// and errors, JSON lines) to w.
func startTaskLogging(t *testing.T, ctx context.Context, dir, text string, opts engine.Options, w io.Writer) (run *engine.Task, ms *metrics.Set, done <-chan error) {
	t.Helper()
	r := component.NewRegistry()
	srckafka.Register(r)
	sinkkafka.Register(r)
	lg := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), w)).Level(zerolog.WarnLevel)
	ms = metrics.New()
	l := &config.Loader{Registry: r, StateDir: filepath.Join(dir, "state"), Shared: component.NewShared(), Logger: lg, Metrics: ms,
		TaskChecks: []func(*config.Task, *component.Problems){kafkaconf.CheckExactlyOnce}}
	task, err := l.Load(filepath.Join(dir, "task.toml"), []byte(text))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	opts.Logger, opts.Metrics = lg, ms
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	run = runner.New(task, opts)
	ch := make(chan error, 1)
	go func() { ch <- run.Run(ctx) }()
	return run, ms, ch
}

// TestEngineKafkaToKafka runs Kafka → Kafka through the loader and the
// engine with four workers: every record lands once in the output topic,
// in order per key, keyed by a template; a record the output rejects goes
// to a Kafka dead-letter topic with its details in headers; a graceful
// stop commits, and a second run starts where the first stopped.
func TestEngineKafkaToKafka(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 4, Topics: []string{"in", "out", "dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 400
	produce := func(from, to int) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			v := fmt.Sprintf(`{"user":"u%d","seq":%d,"pad":"%s"}`, i%7, i, strings.Repeat("p", 20))
			if i == 123 {
				v = fmt.Sprintf(`{"user":"u%d","seq":%d,"pad":"%s"}`, i%7, i, strings.Repeat("p", 3000))
			}
			recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprintf("u%d", i%7)), Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n)
	dir := t.TempDir()
	task := fmt.Sprintf(`name = "k2k"
max_in_flight = 8
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
group = "k2k"
offset = "earliest"
concurrency = 4
max_poll_records = 50
heartbeat_interval = "200ms"
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
key = "${user}"
variables = { user = "$.data.value.user" }
batch_max_bytes = "2KiB"
batch = { max_events = 32, max_wait = "20ms" }
[retry]
policy = "none"
[dead_letter]
type = "kafka"
brokers = [%[1]q]
topic = "dlq"
`, c.Addr())
	runFor := func(until func() bool) engine.Stats {
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		var stats engine.Stats
		var rerr error
		go func() {
			stats, rerr = runTask(t, rctx, dir, task)
			close(done)
		}()
		if !testkit.Eventually(testkit.DefaultWait, until) {
			rcancel()
			<-done
			t.Fatalf("timed out; stats %+v", stats)
		}
		rcancel() // SIGTERM
		<-done
		if rerr != nil {
			t.Fatalf("run: %v", rerr)
		}
		return stats
	}
	count := func(topic string) int {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
		defer cl.Close()
		offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return -1
		}
		total := 0
		offs.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
		return total
	}
	stats := runFor(func() bool { return count("out") == n-1 && count("dlq") == 1 })
	if stats.Delivered != n-1 || stats.DeadLettered != 1 {
		t.Fatalf("first run stats %+v", stats)
	}

	// Records arrive in order per key, keyed by the template.
	read := func(topic string, want int) []*kgo.Record {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		var out []*kgo.Record
		for len(out) < want && rctx.Err() == nil {
			out = append(out, cl.PollFetches(rctx).Records()...)
		}
		return out
	}
	last := map[string]int{}
	for _, r := range read("out", n-1) {
		var ev struct {
			Data struct {
				Value struct {
					User string
					Seq  int
				}
			}
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != ev.Data.Value.User {
			t.Fatalf("key %q, want %q", r.Key, ev.Data.Value.User)
		}
		if prev, ok := last[string(r.Key)]; ok && prev >= ev.Data.Value.Seq {
			t.Fatalf("key %s: seq %d after %d", r.Key, ev.Data.Value.Seq, prev)
		}
		last[string(r.Key)] = ev.Data.Value.Seq
	}
	d := read("dlq", 1)[0]
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	if h["sluice-stage"] != "sink" || h["sluice-error-class"] != "event_permanent" || !strings.Contains(h["sluice-error"], "MESSAGE_TOO_LARGE") ||
		!strings.Contains(string(d.Value), `"seq":123`) || !strings.HasPrefix(h["sluice-position"], "in-") {
		t.Fatalf("dead letter %s with headers %v", d.Value, h)
	}

	// The graceful stop committed everything: a second run delivers only
	// what is produced after it.
	produce(n, n+40)
	stats = runFor(func() bool { return count("out") == n-1+40 })
	if stats.Delivered != 40 {
		t.Fatalf("second run delivered %d, want 40 (stats %+v)", stats.Delivered, stats)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "k2k")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n+40 {
		t.Fatalf("committed %d records, want %d", total, n+40)
	}
}
