package function

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// BenchmarkApply calls a local function that answers each 100-event batch
// with {"output": event} per event: the transform's own cost (request
// body, HTTP round trip on loopback, answer parsing, outputs) per event.
func BenchmarkApply(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Echo: wrap each element (the test events hold no ',' at top
		// level other than between elements).
		out := make([]byte, 0, len(body)*2)
		out = append(out, '[')
		depth, start := 0, 1
		for i := 1; i < len(body)-1; i++ {
			switch body[i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			case ',':
				if depth == 0 {
					out = append(append(append(out, `{"output":`...), body[start:i]...), "},"...)
					start = i + 1
				}
			}
		}
		out = append(append(append(out, `{"output":`...), body[start:len(body)-1]...), "}]"...)
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	tr := newTransform(b, fmt.Sprintf("url = %q\n", srv.URL))
	in := make([]message.Message, 100)
	for i := range in {
		in[i] = message.Message{Payload: fmt.Appendf(nil, `{"order_id":"o-%d","region":"eu-west","amount":129.5,"items":3}`, i), Ref: int32(i)}
	}
	var out component.Output
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(in) {
		out.Reset()
		if err := tr.Apply(context.Background(), in, &out); err != nil || len(out.Messages) != len(in) {
			b.Fatalf("%v %d %+v", err, len(out.Messages), out.Failures)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
