package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// event is the CloudEvent a dead-letter record of the suite holds.
func event(body []byte) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"e","source":"conformance","type":"t","data":%s}`, body)
}

func dataOf(t testing.TB, m message.Message) []byte {
	var ev struct{ Data json.RawMessage }
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	return ev.Data
}

// A replay keeps no position: every new source reads the whole file (or
// topic) again, to the end it had when the source opened.
func TestConformanceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dlq.jsonl")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			env := componenttest.Env(t, zerolog.WarnLevel, "source")
			env.Dir = dir
			return componenttest.Build(t, Register, component.KindSource, "dlq", "path = \"dlq.jsonl\"\nbatch_size = 7\n", env).(component.Source)
		},
		Produce: func(t testing.TB, bodies [][]byte) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, b := range bodies {
				fmt.Fprintf(f, `{"event":%s,"task":"t","stage":"sink","error":{"class":"retryable","message":"m"},"attempts":1}`+"\n", event(b))
			}
		},
		Body:       dataOf,
		Redelivers: true,
		Ordered:    true,
		Finite:     true,
		Rereads:    true,
	})
}

func TestConformanceKafka(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 2, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addr := "kafka://" + strings.Join(c.Addrs(), ",") + "/dlq"
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			return componenttest.Build(t, Register, component.KindSource, "dlq", fmt.Sprintf("path = %q\nbatch_size = 7\n", addr),
				componenttest.Env(t, zerolog.WarnLevel, "source")).(component.Source)
		},
		Produce: func(t testing.TB, bodies [][]byte) {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for i, b := range bodies {
				r := &kgo.Record{Topic: "dlq", Partition: int32(i % 2), Value: event(b),
					Headers: []kgo.RecordHeader{{Key: delivery.HeaderStage, Value: []byte("sink")}}}
				if err := cl.ProduceSync(pctx, r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		},
		Body:       dataOf,
		Redelivers: true,
		Ordered:    true,
		Finite:     true,
		Rereads:    true,
		Snapshot:   true,
	})
}
