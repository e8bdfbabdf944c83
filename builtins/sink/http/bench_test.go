package http

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/runtime/message"
)

func benchMsgs(n int) []message.Message {
	out := make([]message.Message, n)
	for i := range out {
		p := fmt.Sprintf(`{"specversion":"1.0","id":"t-0-%d","source":"s","type":"t","data":{"order_id":"o-%06d","amount":%d.5}}`, i, i, i%500)
		out[i] = message.Message{Payload: []byte(p)}
	}
	return out
}

func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchWrite(b *testing.B, keys string, perWrite int) {
	srv := benchServer(b)
	s := newSink(b, urlKey(srv.URL)+keys)
	in := benchMsgs(perWrite)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perWrite)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWriteNDJSON: 100-event Writes, one request each.
func BenchmarkWriteNDJSON(b *testing.B) {
	benchWrite(b, "", 100)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkWriteJSONArray: 100-event Writes as JSON arrays.
func BenchmarkWriteJSONArray(b *testing.B) {
	benchWrite(b, `format = "json_array"`, 100)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkWriteSingle: one request per event (events/s = requests/s).
func BenchmarkWriteSingle(b *testing.B) {
	benchWrite(b, `format = "single"`, 1)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkWriteNDJSONParallel: 100-event Writes from 4 workers at once.
func BenchmarkWriteNDJSONParallel(b *testing.B) {
	srv := benchServer(b)
	s := newSink(b, urlKey(srv.URL)+"max_in_flight = 4")
	b.ReportAllocs()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		in := benchMsgs(100)
		for pb.Next() {
			if err := s.Write(context.Background(), in); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
