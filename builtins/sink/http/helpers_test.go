package http

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// decodeConfig runs the loader's path for a table written as TOML.
func decodeConfig(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	cfg, p := componenttest.Decode(t, Register, component.KindSink, "http", src)
	return cfg.(*Config), p.List()
}

func testEnv(t testing.TB) component.Env {
	return componenttest.Env(t, zerolog.WarnLevel, "sink")
}

// newSink builds and opens a sink from TOML keys (url included).
func newSink(t testing.TB, keys string) *Sink {
	t.Helper()
	cfg, probs := decodeConfig(t, keys)
	if len(probs) > 0 {
		t.Fatalf("config problems: %v", probs)
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "http")
	v, err := spec.Build(cfg, testEnv(t))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	s := v.(*Sink)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// request is what the test server received.
type request struct {
	method string
	path   string
	header http.Header
	body   string
	remote string // the client's address: a new one means a new connection
}

// recorder is a webhook endpoint that records requests and answers with
// what respond says (nil: 200).
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(n int, r request, w http.ResponseWriter) bool // true: answered
}

func newRecorder(t testing.TB, respond func(n int, r request, w http.ResponseWriter) bool) *recorder {
	rec := &recorder{respond: respond}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: string(b), remote: r.RemoteAddr}
		req.header.Set("Host", r.Host)
		rec.mu.Lock()
		n := len(rec.reqs)
		rec.reqs = append(rec.reqs, req)
		rec.mu.Unlock()
		if rec.respond != nil && rec.respond(n, req, w) {
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) all() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

func msgs(payloads ...string) []message.Message {
	out := make([]message.Message, len(payloads))
	for i, p := range payloads {
		out[i] = message.Message{Payload: []byte(p), Event: []byte(p), Pos: message.Position{Stream: "s", Offset: int64(i)}}
	}
	return out
}

func urlKey(u string) string { return "url = \"" + u + "\"\n" }

func lines(body string) []string {
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}
