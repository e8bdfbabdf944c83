package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
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

// readAll reads s to its end and returns every message.
func readAll(t *testing.T, s component.Source) []message.Message {
	t.Helper()
	var out []message.Message
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Messages...)
	}
}

// A dead-letter line far longer than the line bound (8 x max_event_size +
// 64 KiB) is cut while it is read, so the replay's memory does not grow with
// it, and becomes an error naming the file, the line, its size and the
// limit, with its first max_event_size bytes, for the replay's own
// dead-letter queue; the lines around it are replayed. A last line without
// a newline is bounded the same way.
func TestFileLongLineIsCut(t *testing.T) {
	const maxEvent = 64 << 10
	path := filepath.Join(t.TempDir(), "dlq.jsonl")
	rec := func(id string) string {
		return `{"event":{"specversion":"1.0","id":"` + id + `","source":"s","type":"t"},"task":"x","stage":"sink"}` + "\n"
	}
	long := `{"event":"` + strings.Repeat("x", 32<<20) + `","task":"x","stage":"sink"}`
	tail := `{"event":"` + strings.Repeat("y", 4<<20) // no newline: the file ends inside the line
	content := rec("first") + long + "\n" + rec("third") + tail
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	content = ""
	s := New(Config{Path: path, BatchSize: 512}, component.Env{MaxEvent: maxEvent})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	msgs := readAll(t, s)
	runtime.ReadMemStats(&after)
	// Unbounded, the 32 MiB line alone costs twice its size; bounded, the
	// reads cost the 1 MiB read buffer and one line bound.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading the file allocated %d KiB", alloc>>10)
	if alloc > 8<<20 {
		t.Errorf("reading a 32 MiB dead-letter line with a 64 KiB event limit allocated %d MiB", alloc>>20)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4 (two records, two cut lines)", len(msgs))
	}
	limit := 8*maxEvent + 64<<10
	for i, c := range []struct {
		line int
		size int
		off  int
		head string
	}{
		{2, len(long), len(rec("first")), long[:maxEvent]},
		{4, len(tail), 2*len(rec("first")) + len(long) + 1, tail[:maxEvent]},
	} {
		m := msgs[2*i+1]
		if m.Err == nil {
			t.Fatalf("line %d: no error, payload of %d bytes", c.line, len(m.Payload))
		}
		want := fmt.Sprintf("%s line %d: event too large: the dead-letter record is %d bytes, the limit is %d", path, c.line, c.size, limit)
		if msg := m.Err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "larger max_event_size") ||
			!strings.HasSuffix(msg, fmt.Sprintf("the record holds its first %d bytes", maxEvent)) {
			t.Errorf("line %d: error %q, want it to start %q, name max_event_size and the bytes kept", c.line, msg, want)
		}
		if !errors.Is(m.Err, lineformat.ErrTooLarge) {
			t.Errorf("line %d: %v does not wrap lineformat.ErrTooLarge", c.line, m.Err)
		}
		if string(m.Payload) != c.head {
			t.Errorf("line %d: payload of %d bytes, want the first %d of the line", c.line, len(m.Payload), maxEvent)
		}
		if m.Pos.Stream != path || m.Pos.Offset != int64(c.off) {
			t.Errorf("line %d: position %+v, want offset %d", c.line, m.Pos, c.off)
		}
	}
	for i, id := range []string{"first", "third"} {
		m := msgs[2*i]
		if m.Err != nil || !bytes.Contains(m.Payload, []byte(`"id":"`+id+`"`)) {
			t.Errorf("message %d: %q, %v; want the record %q", 2*i, m.Payload, m.Err, id)
		}
	}
	if off := msgs[2].Pos.Offset; off != int64(len(rec("first"))+len(long)+1) {
		t.Errorf("the record after the cut line is at offset %d, want %d", off, len(rec("first"))+len(long)+1)
	}
}

// An event over the replay's max_event_size (its line within the bound) is
// a decode error of the replay, naming its line, as the task's own source
// would make it.
func TestFileEventOverLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dlq.jsonl")
	small := `{"event":{"specversion":"1.0","id":"small","source":"s","type":"t"},"stage":"sink"}` + "\n"
	big := `{"event":{"specversion":"1.0","id":"big","source":"s","type":"t","data":"` + strings.Repeat("z", 2048) + `"},"stage":"sink"}` + "\n"
	if err := os.WriteFile(path, []byte(small+big), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Path: path, BatchSize: 10}, component.Env{MaxEvent: 1024})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	msgs := readAll(t, s)
	if len(msgs) != 2 || msgs[0].Err != nil {
		t.Fatalf("%d messages (%v), want the small event and an error", len(msgs), msgs)
	}
	err := msgs[1].Err
	if !errors.Is(err, lineformat.ErrTooLarge) || !strings.HasPrefix(err.Error(), path+" line 2: ") {
		t.Fatalf("the 2 KiB event with a 1 KiB limit: %v, want a too-large error naming line 2", err)
	}
	if !bytes.Contains(msgs[1].Payload, []byte(`"id":"big"`)) {
		t.Fatalf("payload %q, want the event", msgs[1].Payload)
	}
}
