package kafka

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/message"
)

// BenchmarkWrite produces 256-record Writes of ~250-byte payloads to a
// kfake cluster that acknowledges without storing (so the broker's memory
// does not grow with b.N), with one or four concurrent writers as the
// engine's workers would. ns/op and allocs/op are per record.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name    string
		writers int
		extra   map[string]any
	}{
		{"1writer", 1, nil},
		{"4writers", 4, nil},
		{"4writers-keytemplate", 4, map[string]any{"key": "${id}", "variables": map[string]any{"id": "$.data.value.order_id"}}},
		{"4writers-zstd", 4, map[string]any{"compression": "zstd"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 6, Topics: []string{"bench"}, Extra: []kfake.Opt{kfake.BlackholeProduce()}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			tree := map[string]any{"brokers": []any{c.Addr()}, "topic": "bench"}
			for k, v := range bc.extra {
				tree[k] = v
			}
			s := newSink(b, testEnv(b), tree)
			const batch = 256
			msgs := make([]message.Message, batch)
			size := 0
			for i := range msgs {
				ev := `{"specversion":"1.0","id":"orders-3-` + strconv.Itoa(i) + `","data":{"value":{"order_id":"o-` + strconv.Itoa(i) + `","amount":129.5}}}`
				payload := `{"order":"o-` + strconv.Itoa(i) + `","amount":129.5,"region":"eu-west","note":"` + strings.Repeat("x", 170) + `"}`
				msgs[i] = message.Message{Event: []byte(ev), Payload: []byte(payload), Key: []byte("user-" + strconv.Itoa(i%50)), Time: time.Now()}
				size += len(payload)
			}
			b.SetBytes(int64(size / batch))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + batch*bc.writers - 1) / (batch * bc.writers) // Writes per writer
			for range bc.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if err := s.Write(context.Background(), msgs); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*batch*bc.writers)/time.Since(start).Seconds(), "records/s")
			b.StopTimer()
			_ = s.Close(context.Background())
		})
	}
}
