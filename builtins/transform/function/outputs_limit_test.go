package function

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// fanOut answers each call with one result per event holding n outputs
// ("0", two bytes of answer each): a function splitting an event's array,
// fed an event of half a million tiny elements.
func fanOut(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString(`[{"outputs":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('0')
		}
		b.WriteString(`]}]`)
		_, _ = w.Write([]byte(b.String()))
	}
}

// TestFanOutPastMaxOutputsFails: the outputs of one call are bounded
// (max_outputs, 65,536 by default, as for a WASM transform): each costs a
// message of about 170 bytes for two bytes of answer, so a 32 MiB answer
// (max_response_bytes) made 16 million of them, gigabytes for one call. An
// answer past the limit fails the call's events, with nothing emitted.
func TestFanOutPastMaxOutputsFails(t *testing.T) {
	srv := httptest.NewServer(fanOut(65537))
	defer srv.Close()
	tr := newTransform(t, fmt.Sprintf("url = %q\n", srv.URL))
	out := apply(t, tr, `{}`)
	if len(out.Messages) != 0 || len(out.Failures) != 1 || len(out.Buf) != 0 {
		t.Fatalf("%d outputs, %d failures, %d bytes of buffer; want the event failed with nothing emitted", len(out.Messages), len(out.Failures), len(out.Buf))
	}
	if err := out.Failures[0].Err; component.ClassOf(err) != component.ClassEventPermanent || !strings.Contains(err.Error(), "max_outputs") {
		t.Fatalf("failure %v (%s); want an event-permanent one naming max_outputs", err, component.ClassOf(err))
	}

	// At the limit, every output is emitted.
	srv2 := httptest.NewServer(fanOut(10))
	defer srv2.Close()
	tr = newTransform(t, fmt.Sprintf("url = %q\nmax_outputs = 10\n", srv2.URL))
	if out := apply(t, tr, `{}`); len(out.Messages) != 10 || len(out.Failures) != 0 {
		t.Fatalf("%d outputs, %d failures at the limit; want 10 and 0", len(out.Messages), len(out.Failures))
	}
}
