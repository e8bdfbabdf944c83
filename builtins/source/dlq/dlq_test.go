package dlq

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
)

func drain(t *testing.T, s component.Source) []string {
	t.Helper()
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var out []string
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			if m.Err != nil {
				out = append(out, "ERR "+m.Err.Error())
				continue
			}
			out = append(out, string(m.Payload))
		}
	}
}

func TestFileReplay(t *testing.T) {
	dir := t.TempDir()
	recs := `{"event":{"specversion":"1.0","id":"a-0-1","source":"s","type":"t","data":1},"task":"x","stage":"sink","error":{"class":"retryable","message":"m"},"attempts":4}
{"event":"raw text line","task":"x","stage":"decode"}

{"event":{"specversion":"1.0","id":"a-0-3","source":"s","type":"t"},"stage":"transform[1]"}
not a record
{"task":"x","stage":"sink"}
`
	os.WriteFile(filepath.Join(dir, "dlq.jsonl"), []byte(recs), 0o644)
	all := drain(t, New(Config{Path: filepath.Join(dir, "dlq.jsonl"), BatchSize: 2}, component.Env{}))
	if len(all) != 5 || all[0] != `{"specversion":"1.0","id":"a-0-1","source":"s","type":"t","data":1}` ||
		!strings.Contains(all[1], `"data":"raw text line"`) || !strings.HasPrefix(all[3], "ERR ") || !strings.Contains(all[4], `no "event" member`) {
		t.Fatalf("%q", all)
	}
	some := drain(t, New(Config{Path: filepath.Join(dir, "*.jsonl"), Stages: []string{"sink", "transform"}, BatchSize: 10}, component.Env{}))
	if len(some) != 4 || !strings.Contains(some[1], `"a-0-3"`) {
		t.Fatalf("%q", some)
	}
	if err := New(Config{Path: filepath.Join(dir, "none*.jsonl")}, component.Env{}).Open(context.Background()); component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("missing file: %v", err)
	}
}

func TestKafkaReplay(t *testing.T) {
	ctx := context.Background()
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
	for i, stage := range []string{"sink", "decode", "sink", "filter"} {
		r := &kgo.Record{Topic: "dlq", Partition: int32(i % 2), Value: []byte(`{"specversion":"1.0","id":"e` + string(rune('0'+i)) + `","source":"s","type":"t"}`),
			Headers: []kgo.RecordHeader{{Key: delivery.HeaderStage, Value: []byte(stage)}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewKafka("kafka://"+strings.Join(c.Addrs(), ",")+"/dlq", []string{"sink"}, 0, component.Env{})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	if len(got) != 2 || !strings.Contains(strings.Join(got, ""), `"id":"e0"`) || !strings.Contains(strings.Join(got, ""), `"id":"e2"`) {
		t.Fatalf("%q", got)
	}
	if _, _, err := ParseKafkaURL("kafka:///x"); err == nil {
		t.Fatal("an address without brokers was accepted")
	}
}
