package kafkae2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
)

// BenchmarkKafkaPipeline measures Kafka -> filter -> template -> Kafka
// through the loader and the real engine, against a local cluster (kfake
// over TCP, in this process). Each iteration is one input record; the
// clock runs from the first record read to the last one handled (written
// to the output topic and acknowledged, or filtered), so group joins and
// producing the input are not counted. It reports events/s and MB/s of
// input record values. About a third of the records pass the filter. The
// exactly_once variant runs the same task in transactions (one per 200 ms);
// its clock stops when the last record is acknowledged, before the last
// transaction commits.
//
//	go test -run '^$' -bench KafkaPipeline -benchtime 200000x ./builtins/internal/kafkae2e
func BenchmarkKafkaPipeline(b *testing.B) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			benchPipeline(b, conc, false)
		})
	}
	b.Run("exactly_once/concurrency=4", func(b *testing.B) {
		benchPipeline(b, 4, true)
	})
}

func benchPipeline(b *testing.B, concurrency int, eos bool) {
	b.StopTimer()
	c := startCluster(b, 8, "in", "out")
	cl := newClient(b, c.Addr(), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	ctx := context.Background()
	var inBytes int64
	const chunk = 5000
	recs := make([]*kgo.Record, 0, chunk)
	for seq := 0; seq < b.N; seq += chunk {
		recs = recs[:0]
		for i := seq; i < min(seq+chunk, b.N); i++ {
			v := order(i)
			inBytes += int64(len(v))
			recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "user-%d", i%1000), Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}

	dir := b.TempDir()
	text := fmt.Sprintf(`name = "bench"
exactly_once = %[3]v
max_in_flight = 16
[source]
type = "kafka"
brokers = [%[1]q]
topics = ["in"]
offset = "earliest"
concurrency = %[2]d
max_poll_records = 1000
fetch_max_wait = "100ms"
commit_interval = "200ms"
[filter.pattern.data.value]
region = [{ prefix = "eu-" }]
amount = [{ numeric = [">", 100] }]
[[transform]]
type = "template"
variables = { order = "$.data.value.order_id", amount = "$.data.value.amount", region = "$.data.value.region" }
template = '{"order": "${order}", "amount": ${amount}, "region": "${region}"}'
[sink]
type = "kafka"
brokers = [%[1]q]
topic = "out"
key = "${order}"
variables = { order = "$.data.value.order_id" }
batch = { max_events = 1000 }
[retry]
policy = "none"
`, c.Addr(), concurrency, eos)
	path := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	l := &config.Loader{Registry: r, BuildFilter: builtins.BuildFilter, TaskChecks: builtins.TaskChecks,
		StateDir: filepath.Join(dir, "state"), Shared: component.NewShared(), Metrics: metrics.New(), Logger: zerolog.Nop()}
	task, err := l.LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	run := runner.New(task, engine.Options{Logger: zerolog.Nop(), Metrics: metrics.New(), ShutdownTimeout: 10 * time.Second})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	handled := func() uint64 {
		s := run.Stats()
		return s.Delivered + s.Filtered + s.DeadLettered + s.Dropped
	}
	for run.Stats().In == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no record read")
		}
		time.Sleep(200 * time.Microsecond) // a fine poll: the benchmark's clock stops when the condition holds
	}
	b.StartTimer()
	start := time.Now()
	for handled() < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d records", handled(), b.N)
		}
		time.Sleep(200 * time.Microsecond) // a fine poll: the benchmark's clock stops when the condition holds
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	s := run.Stats()
	if s.DeadLettered+s.Dropped > 0 || b.N >= 100 && s.Delivered == 0 {
		b.Fatalf("stats %+v", s)
	}
	// Under exactly_once the end offsets also count the transaction markers.
	if got := topicRecords(b, c.Addr(), "out"); got < int64(s.Delivered) || !eos && got != int64(s.Delivered) {
		b.Fatalf("the output topic holds %d records; the task delivered %d", got, s.Delivered)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(inBytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(s.Delivered)/float64(b.N), "passed/event")
}
