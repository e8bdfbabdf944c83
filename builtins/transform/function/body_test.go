package function

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// heldBody stands between the transport and the transform's request body:
// the transport's Close is recorded and not passed on, as if the transport
// closed the body late, after RoundTrip returned (which
// http.RoundTripper allows).
type heldBody struct {
	inner  io.ReadCloser
	closed chan struct{} // the transport closed the body
	once   sync.Once
}

func (h *heldBody) Read(p []byte) (int, error) { return h.inner.Read(p) }

func (h *heldBody) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

type holdingTransport struct {
	next   http.RoundTripper
	bodies chan *heldBody
}

func (rt *holdingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := &heldBody{inner: req.Body, closed: make(chan struct{})}
	r := req.Clone(req.Context())
	r.Body, r.GetBody = h, nil
	rt.bodies <- h
	return rt.next.RoundTrip(r)
}

// TestRequestBufferOutlivesTheCall: the function answers before reading a
// large request body. The request buffer must not go back to the pool (to
// be overwritten by the next call) while the transport may still read the
// body: only once the body is closed.
func TestRequestBufferOutlivesTheCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"output":{"ok":true}}]`) // before reading the body
	}))
	defer srv.Close()
	tr := newTransform(t, "url = \""+srv.URL+"\"\n")
	hold := &holdingTransport{next: tr.client.Transport, bodies: make(chan *heldBody, 4)}
	tr.client.Transport = hold
	var recycled atomic.Int32
	tr.recycled = func() { recycled.Add(1) }

	apply(t, tr, `"`+strings.Repeat("x", 8<<20)+`"`) // the outcome depends on the race of the answer and the write
	if n := recycled.Load(); n != 0 {
		t.Fatalf("request buffer back in the pool when the call returned, before the transport closed the body (%d)", n)
	}
	h := <-hold.bodies
	select {
	case <-h.closed:
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		t.Fatal("the transport never closed the request body")
	}
	if n := recycled.Load(); n != 0 {
		t.Fatalf("request buffer back in the pool before its body was closed (%d)", n)
	}
	h.inner.Close()
	if n := recycled.Load(); n != 1 {
		t.Fatalf("request buffer not back in the pool once its body was closed (%d)", n)
	}
}
