package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchFile writes n NDJSON lines of about 150 bytes.
func benchFile(b *testing.B, fx *fixture, n int) int64 {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"ts":"2026-11-25T15:00:00.000Z","level":"info","user":%d,"msg":"order placed","amount":%d.5,"region":"eu-west-1"}`+"\n", i, i%1000)
	}
	writeFile(b, fx.path("in.jsonl"), sb.String())
	return int64(sb.Len())
}

func benchRead(b *testing.B, keys string) {
	const n = 200_000
	fx := newFixture(b, keys)
	size := benchFile(b, fx, n)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := fx.build()
		if err := s.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			bt, err := s.Read(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += len(bt.Messages)
			bt.Ack(nil)
		}
		if got != n {
			b.Fatalf("read %d lines, want %d", got, n)
		}
		if err := s.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkReadAuto reads a 24 MB NDJSON file in read mode, wrapping each
// line (format auto), acknowledging every batch (checkpointed as it goes).
func BenchmarkReadAuto(b *testing.B) { benchRead(b, `path = "in.jsonl"`) }

// BenchmarkReadDecodeErrors reads lines that all fail the strict
// cloudevents format: each is emitted with its error, the cost of the
// dead-letter path.
func BenchmarkReadDecodeErrors(b *testing.B) {
	benchRead(b, "path = \"in.jsonl\"\nformat = \"cloudevents\"")
}

// BenchmarkReadNoCheckpoint is BenchmarkReadAuto without a state
// directory to write to, to show what checkpointing costs.
func BenchmarkReadNoCheckpoint(b *testing.B) {
	const n = 200_000
	fx := newFixture(b, `path = "in.jsonl"`)
	size := benchFile(b, fx, n)
	// A file where the state directory should be: the store cannot be
	// created, and read mode goes on without it.
	writeFile(b, fx.state, "")
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := fx.build()
		if err := s.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		for {
			bt, err := s.Read(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			bt.Ack(nil)
		}
		s.Close(context.Background())
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
