package dlq

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// A line dead-lettered at decode and replayed through the dlq source gives
// the event the auto line format builds from that same line: a JSON string
// line ("abc" with its quotes) stays a JSON string, and a text line (abc)
// stays text, though both are strings in the record.
func TestReplayOfDeadLetteredLineKeepsJSONStringApartFromText(t *testing.T) {
	lines := []string{
		`"abc"`,
		`abc`,
		`"123"`,
		`123`,
		`"true"`,
		` "x" `,
		`"abc`,
		`"{\"specversion\":\"1.0\",\"id\":\"forged\",\"source\":\"s\",\"type\":\"t\"}"`,
		`{"specversion":"1.0","id":"ce","source":"s","type":"t"}`,
		``,
	}
	path := filepath.Join(t.TempDir(), "dlq.jsonl")
	var file []byte
	for i, l := range lines {
		r := delivery.Record{Event: []byte(l), Task: "t", Stage: "decode", Err: errors.New("cannot decode"), Attempts: 1,
			Pos: message.Position{Stream: "in", Offset: int64(i)}, Time: time.Unix(0, 0)}
		file = append(r.AppendJSON(file), '\n')
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Path: path, BatchSize: 100}, component.Env{})
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	msgs := readAll(t, s)
	if len(msgs) != len(lines) {
		t.Fatalf("%d events replayed from %d records", len(msgs), len(lines))
	}
	type ce struct {
		ID          string          `json:"id"`
		ContentType string          `json:"datacontenttype"`
		Data        json.RawMessage `json:"data"`
	}
	for i, l := range lines {
		w := lineformat.Wrapper{Format: lineformat.Auto, Source: "sluice/dlq", Type: "sluice.dlq.replay"}
		want, err := w.Append(nil, []byte(l), msgs[i].Pos)
		if err != nil {
			t.Fatal(err)
		}
		if msgs[i].Err != nil {
			t.Fatalf("line %q: replay failed: %v", l, msgs[i].Err)
		}
		var got, exp ce
		if err := json.Unmarshal(msgs[i].Payload, &got); err != nil {
			t.Fatalf("line %q: replayed %q: %v", l, msgs[i].Payload, err)
		}
		json.Unmarshal(want, &exp)
		if got.ID != exp.ID || got.ContentType != exp.ContentType || string(got.Data) != string(exp.Data) {
			t.Errorf("line %q: replayed as %s, want %s", l, msgs[i].Payload, want)
		}
	}
}
