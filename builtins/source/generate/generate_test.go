package generate

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

func TestCountSeedAndShape(t *testing.T) {
	read := func(seed int64, preset string) []string {
		s := New(&Config{Count: 1000, BatchSize: 300, Preset: preset, Seed: seed, Source: "g"})
		s.Open(context.Background())
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
				out = append(out, string(m.Payload))
			}
		}
	}
	a := read(1, "orders")
	if len(a) != 1000 {
		t.Fatalf("%d events", len(a))
	}
	for i, ev := range a {
		var e struct {
			ID, Type string
			Data     struct {
				OrderID string `json:"order_id"`
				Region  string
				Amount  float64
				Items   int
			}
		}
		if err := json.Unmarshal([]byte(ev), &e); err != nil || e.Data.OrderID == "" || e.Data.Region == "" || e.Data.Items < 1 || e.Type != "sluice.order" {
			t.Fatalf("event %d: %s (%v)", i, ev, err)
		}
	}
	b := read(1, "orders")
	c := read(2, "orders")
	// Same seed, same content (times aside): compare the data part.
	if data(a[17]) != data(b[17]) || data(a[17]) == data(c[17]) {
		t.Fatal("seed does not decide the content")
	}
	for _, ev := range read(1, "clicks")[:10] {
		if !json.Valid([]byte(ev)) {
			t.Fatalf("clicks event %s", ev)
		}
	}
}

func data(ev string) string {
	var e struct{ Data json.RawMessage }
	json.Unmarshal([]byte(ev), &e)
	return string(e.Data)
}

func TestRate(t *testing.T) {
	s := New(&Config{Count: 60, BatchSize: 100, Rate: 200, Preset: "orders", Seed: 1})
	s.Open(context.Background())
	start := time.Now()
	n := 0
	for {
		b, err := s.Read(context.Background())
		if err != nil {
			break
		}
		n += len(b.Messages)
	}
	// 60 events at 200/s take about 0.3 s; the first batch is due at once.
	if el := time.Since(start); n != 60 || el < 200*time.Millisecond {
		t.Fatalf("%d events in %v", n, el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := New(&Config{Rate: 0.001, BatchSize: 1, Preset: "orders"})
	slow.Open(context.Background())
	slow.Read(context.Background())
	if _, err := slow.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a paced Read must end with its context: %v", err)
	}
}
