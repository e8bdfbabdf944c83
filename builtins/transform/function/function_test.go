package function

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func newTransform(t testing.TB, src string) *Transform {
	t.Helper()
	env := componenttest.Env(t, zerolog.InfoLevel, "transform", "[0]")
	tr := componenttest.Build(t, Register, component.KindTransform, "function", src, env).(*Transform)
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

// enrich is a function: each event {"n":N,...} becomes {"n":N,"double":2N};
// {"drop":true} events are dropped, {"bad":true} rejected, {"split":true}
// fanned out in two.
func enrich(w http.ResponseWriter, r *http.Request) {
	var events []any
	if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []any
	for _, ev := range events {
		e, ok := ev.(map[string]any)
		switch {
		case !ok:
			out = append(out, map[string]any{"error": "not an object"})
		case e["drop"] == true:
			out = append(out, map[string]any{"drop": true})
		case e["bad"] == true:
			out = append(out, map[string]any{"error": "bad record"})
		case e["split"] == true:
			out = append(out, map[string]any{"outputs": []any{map[string]any{"part": 1}, map[string]any{"part": 2}}})
		default:
			n, _ := e["n"].(float64)
			out = append(out, map[string]any{"output": map[string]any{"n": n, "double": 2 * n}})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func TestConformance(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(enrich))
	defer srv.Close()
	componenttest.Transform(t, componenttest.TransformSuite{
		New: func(t testing.TB) component.Transform {
			return newTransform(t, fmt.Sprintf("url = %q\nmax_batch = 2\n", srv.URL))
		},
		Inputs: [][]byte{
			[]byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"drop":true}`), []byte(`{"bad":true}`), []byte(`{"split":true}`), []byte(`not json`),
		},
	})
}

func apply(t testing.TB, tr component.Transform, payloads ...string) *component.Output {
	t.Helper()
	in := make([]message.Message, len(payloads))
	for i, p := range payloads {
		in[i] = message.Message{Payload: []byte(p), Ref: int32(i), Key: []byte("k")}
	}
	var out component.Output
	if err := tr.Apply(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestResults(t *testing.T) {
	var calls atomic.Int64
	var bodies sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies.Store(n, string(b))
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("X-Custom") != "v" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "headers", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		enrich(w, r)
	}))
	defer srv.Close()
	tr := newTransform(t, fmt.Sprintf("url = %q\ntoken = \"tok\"\nheaders = { X-Custom = \"v\" }\nmax_batch = 3\n", srv.URL))
	out := apply(t, tr, `{"n":1}`, `{"drop":true}`, `{"bad":true}`, `{"split":true}`, `{"n":5}`, "text \"q\"")
	var got []string
	for _, m := range out.Messages {
		got = append(got, fmt.Sprintf("%d:%s", m.Ref, m.Payload))
		if string(m.Key) != "k" || cap(m.Payload) != len(m.Payload) {
			t.Fatalf("output %+v", m)
		}
	}
	want := []string{`0:{"double":2,"n":1}`, `3:{"part":1}`, `3:{"part":2}`, `4:{"double":10,"n":5}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("outputs %v", got)
	}
	if len(out.Failures) != 2 || out.Failures[0].Ref != 2 || component.ClassOf(out.Failures[0].Err) != component.ClassEventPermanent ||
		!strings.Contains(out.Failures[0].Err.Error(), "bad record") || out.Failures[1].Ref != 5 || !strings.Contains(out.Failures[1].Err.Error(), "not an object") {
		t.Fatalf("failures %+v", out.Failures)
	}
	// The text input is sent as a JSON string, which the function
	// rejects as not an object.
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2 (max_batch = 3)", calls.Load())
	}
	if b, _ := bodies.Load(int64(2)); b != `[{"split":true},{"n":5},"text \"q\""]` {
		t.Fatalf("second request body %s", b)
	}
}

func TestValuesMode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"a":1}, null, "s"]`)
	}))
	defer srv.Close()
	tr := newTransform(t, fmt.Sprintf("url = %q\nresponse = \"values\"\n", srv.URL))
	out := apply(t, tr, `1`, `2`, `3`)
	if len(out.Messages) != 2 || string(out.Messages[0].Payload) != `{"a":1}` || out.Messages[1].Ref != 2 || string(out.Messages[1].Payload) != `"s"` {
		t.Fatalf("%+v", out.Messages)
	}
}

func TestStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		class  component.Class
		msg    string
	}{
		{503, "overloaded", component.ClassRetryable, "503"},
		{429, "slow down", component.ClassRetryable, "429"},
		{400, "bad request", component.ClassEventPermanent, "400"},
		{401, "no", component.ClassEventPermanent, "401"},
		// 501, 505 and 511 are 5xx, but no retry changes them: they were
		// retried until the policy gave up, forever with a disk buffer.
		{501, "no PATCH here", component.ClassEventPermanent, "501"},
		{505, "HTTP/1.1 only", component.ClassEventPermanent, "505"},
		{511, "log in to the hotspot", component.ClassEventPermanent, "511"},
		{504, "gateway timeout", component.ClassRetryable, "504"},
		{200, `{"not":"an array"}`, component.ClassEventPermanent, "want a JSON array"},
		{200, `[1]`, component.ClassEventPermanent, "1 elements for 2 events"},
		{200, `[1,`, component.ClassEventPermanent, "malformed"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		tr := newTransform(t, fmt.Sprintf("url = %q\n", srv.URL))
		out := apply(t, tr, `{}`, `{}`)
		srv.Close()
		if len(out.Messages) != 0 || len(out.Failures) != 2 {
			t.Fatalf("%d: %+v", tc.status, out)
		}
		for _, f := range out.Failures {
			if component.ClassOf(f.Err) != tc.class || !strings.Contains(f.Err.Error(), tc.msg) {
				t.Fatalf("%d %s: %s %v", tc.status, tc.body, component.ClassOf(f.Err), f.Err)
			}
		}
	}
}

func TestTimeoutAndUnreachable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	tr := newTransform(t, fmt.Sprintf("url = %q\ntimeout = \"50ms\"\n", srv.URL))
	out := apply(t, tr, `{}`)
	if len(out.Failures) != 1 || component.ClassOf(out.Failures[0].Err) != component.ClassRetryable || !strings.Contains(out.Failures[0].Err.Error(), "timeout") {
		t.Fatalf("%+v", out.Failures)
	}
	down := newTransform(t, "url = \"http://user:secret@127.0.0.1:1/fn\"\n")
	out = apply(t, down, `{}`)
	if len(out.Failures) != 1 || component.ClassOf(out.Failures[0].Err) != component.ClassRetryable || strings.Contains(out.Failures[0].Err.Error(), "secret") {
		t.Fatalf("%+v", out.Failures)
	}
	// The task's context ending is not an event failure.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	slow := newTransform(t, fmt.Sprintf("url = %q\ntimeout = \"1m\"\n", srv.URL))
	var o component.Output
	if err := slow.Apply(ctx, []message.Message{{Payload: []byte(`{}`)}}, &o); err == nil {
		t.Fatalf("Apply with an ended context returned nil (%+v)", o)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ src, path, msg string }{
		{`url = "ftp://x"`, "transform.url", "invalid function URL"},
		{`url = "http://x"` + "\nresponse = \"raw\"", "transform.response", "invalid value"},
		{`url = "http://x"` + "\nmax_batch = 0", "transform.max_batch", "value 0 is below"},
	} {
		_, p := componenttest.Decode(t, Register, component.KindTransform, "function", tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.HasPrefix(probs[0].Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.src, probs)
		}
	}
}

// TestRetryAfterIsCapped: the function's Retry-After is passed on to the
// engine, which waits for it; a huge one is capped at 7 days (as the HTTP
// sink caps it) instead of overflowing into a meaningless wait.
func TestRetryAfterIsCapped(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"30", 30 * time.Second},
		{"99999999999999", 7 * 24 * time.Hour},
		{"99999999999999999999", 7 * 24 * time.Hour},                         // past int64: the cap, not nothing
		{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), time.Hour}, // read against the clock: up to a minute less
		{"-5", 0},
		{"soon", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tc.header)
			w.WriteHeader(http.StatusTooManyRequests)
		}))
		tr := newTransform(t, fmt.Sprintf("url = %q\n", srv.URL))
		out := apply(t, tr, `{}`)
		srv.Close()
		if len(out.Failures) != 1 {
			t.Fatalf("Retry-After %q: %+v", tc.header, out)
		}
		if got := component.RetryAfter(out.Failures[0].Err); got != tc.want && (got > tc.want || got < tc.want-time.Minute || !strings.Contains(tc.header, "GMT")) {
			t.Fatalf("Retry-After %q: passed on %v, want %v", tc.header, got, tc.want)
		}
	}
}
