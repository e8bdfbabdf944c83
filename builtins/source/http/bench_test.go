package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
)

// ackAll plays an engine that acknowledges every batch at once, copying
// nothing, so the benchmarks measure the source.
func ackAll(b *testing.B, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			bt, err := s.Read(ctx)
			if err != nil {
				return
			}
			bt.Ack(nil)
		}
	}()
	b.Cleanup(func() { cancel(); <-done })
}

func ndjsonBody(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"order_id":"o-%06d","region":"eu-west","amount":%d.5,"items":[{"sku":"a","qty":2}]}`+"\n", i, i%500)
	}
	return b.Bytes()
}

// BenchmarkIngestNDJSON posts a 1000-event NDJSON body to a running source
// over loopback; an engine goroutine acknowledges each batch at once.
func BenchmarkIngestNDJSON(b *testing.B) {
	s, base := startSource(b, "concurrency = 2")
	ackAll(b, s)
	body := ndjsonBody(1000)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		resp, err := client.Post(base+"/", "application/x-ndjson", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkIngestNDJSONParallel is the same with several clients at once.
func BenchmarkIngestNDJSONParallel(b *testing.B) {
	s, base := startSource(b, "concurrency = 4")
	ackAll(b, s)
	body := ndjsonBody(1000)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start := time.Now()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(base+"/", "application/x-ndjson", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkSplitNDJSON measures the splitter alone (no HTTP): 1000 lines
// wrapped into CloudEvents.
func BenchmarkSplitNDJSON(b *testing.B) {
	body := ndjsonBody(1000)
	bl := &builder{w: lineformat.Wrapper{Source: "sluice/t/http", Type: "sluice.http", MaxEvent: 1 << 20}}
	bl.body = body
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bl.reset("abc-1", now)
		if err := bl.split(frameLines, lineformat.Auto, nil, "application/x-ndjson"); err != nil {
			b.Fatal(err)
		}
		if len(bl.finish()) != 1000 {
			b.Fatal("lost events")
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSplitJSONArray measures a 1000-element JSON array body.
func BenchmarkSplitJSONArray(b *testing.B) {
	lines := bytes.Split(bytes.TrimSpace(ndjsonBody(1000)), []byte("\n"))
	body := append(append([]byte("["), bytes.Join(lines, []byte(","))...), ']')
	bl := &builder{w: lineformat.Wrapper{Source: "sluice/t/http", Type: "sluice.http", MaxEvent: 1 << 20}}
	bl.body = body
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bl.reset("abc-1", now)
		if err := bl.split(frameJSON, lineformat.Auto, nil, "application/json"); err != nil {
			b.Fatal(err)
		}
		if len(bl.finish()) != 1000 {
			b.Fatal("lost events")
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
