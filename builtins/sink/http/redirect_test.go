package http

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestCrossOriginRedirectDropsConfiguredHeaders: a 307 to another origin
// (scheme, host or port differ) must not carry the configured secrets
// there: every header of `headers` (but Content-Type, which describes the
// body), the bearer token and the URL's basic auth are dropped. A redirect
// within the origin keeps them.
func TestCrossOriginRedirectDropsConfiguredHeaders(t *testing.T) {
	other := newRecorder(t, nil) // another port: another origin
	rec := newRecorder(t, func(n int, r request, w http.ResponseWriter) bool {
		switch r.path {
		case "/same":
			w.Header().Set("Location", "/landing")
		case "/away":
			w.Header().Set("Location", other.srv.URL+"/stolen")
		default:
			return false
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
		return true
	})
	keys := func(url string) string {
		return urlKey(url) + `token = "tok-secret"
headers = { "X-Api-Key" = "key-secret", "X-Source" = "sluice", "Content-Type" = "application/x-ndjson" }
`
	}
	secrets := []string{"X-Api-Key", "X-Source", "Authorization"}

	s := newSink(t, keys(rec.srv.URL+"/same"))
	if err := s.Write(context.Background(), msgs(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	reqs := rec.all()
	if len(reqs) != 2 || reqs[1].path != "/landing" {
		t.Fatalf("same-origin redirect: %+v", reqs)
	}
	for _, h := range secrets {
		if reqs[1].header.Get(h) == "" {
			t.Errorf("same-origin redirect lost %s", h)
		}
	}

	s = newSink(t, keys(strings.Replace(rec.srv.URL, "http://", "http://user:pass-secret@", 1)+"/away"))
	if err := s.Write(context.Background(), msgs(`{"x":2}`)); err != nil {
		t.Fatal(err)
	}
	got := other.all()
	if len(got) != 1 || got[0].path != "/stolen" || got[0].body != "{\"x\":2}\n" {
		t.Fatalf("cross-origin redirect: %+v", got)
	}
	for _, h := range secrets {
		if v := got[0].header.Get(h); v != "" {
			t.Errorf("cross-origin redirect carried %s: %q", h, v)
		}
	}
	if ct := got[0].header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q, want the configured one (it describes the body)", ct)
	}
}

// TestRedirectLoopStopsTaskPermanent: an endpoint that redirects (307) to
// itself forever. net/http makes the next hop's body with GetBody before
// CheckRedirect refuses the hop, and never sends or closes it; Write must
// still return, after following 5 redirects, with a task-permanent error
// that says the redirects were too many (not "set url to the new
// location", which is where it points already).
func TestRedirectLoopStopsTaskPermanent(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			rec := newRecorder(t, func(n int, r request, w http.ResponseWriter) bool {
				w.Header().Set("Location", "/hook")
				w.WriteHeader(code)
				return true
			})
			s := newSink(t, urlKey(rec.srv.URL+"/hook"))
			done := make(chan error, 1)
			go func() { done <- s.Write(context.Background(), msgs(`{"a":1}`)) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute): // backstop only
				t.Fatalf("Write has not returned; the server saw %d requests", len(rec.all()))
			}
			if c := component.ClassOf(err); c != component.ClassTaskPermanent {
				t.Fatalf("class %v, want task_permanent: %v", c, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "too many") || strings.Contains(msg, "not followed") {
				t.Errorf("message does not say the redirects were too many: %v", err)
			}
			if got := len(rec.all()); got != 6 {
				t.Errorf("server saw %d requests, want 6 (the request and 5 redirects)", got)
			}
			// The sink is still usable: the next Write does not wait for
			// the unsent body either.
			go func() { done <- s.Write(context.Background(), msgs(`{"a":2}`)) }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("second Write has not returned")
			}
		})
	}
}
