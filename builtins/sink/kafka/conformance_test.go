package kafka

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestConformance runs the sink suite on a one-partition topic (so the
// topic keeps the order of a Write); a consumer reads what lands. A record
// over batch_max_bytes is the poison (MESSAGE_TOO_LARGE). The outage check
// is left out: a Kafka client learns the brokers' own addresses from the
// cluster, so a proxy in front of the bootstrap address cannot cut it off.
func TestConformance(t *testing.T) {
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"conf"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("conf"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	var got [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
			mu.Unlock()
		}
	}()
	defer func() { cancel(); <-done }()
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "conf", "batch_max_bytes": "1KiB"})
		},
		Received: func(testing.TB) [][]byte {
			mu.Lock()
			defer mu.Unlock()
			return append([][]byte(nil), got...)
		},
		Ordered: true,
		Poison:  func(testing.TB) []byte { return []byte(`{"big":"` + strings.Repeat("x", 4096) + `"}`) },
		Refused: func(t testing.TB) component.Sink {
			return buildSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "missing"})
		},
	})
}
