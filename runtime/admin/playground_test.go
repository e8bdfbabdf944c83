package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/sluicehq/sluice/runtime/metrics"
)

// POST /playground serves at most 2 runs at once; the others answer 429
// with Retry-After. Nothing limited them: 8 requests to a playground that
// blocks were all admitted, each holding a goroutine and, for a CPU-bound
// condition, a core (found in review).
func TestPlaygroundRunsAtOnceAreLimited(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	play := func(ctx context.Context, event, config string) ([][]byte, bool, error) {
		entered <- struct{}{}
		<-release
		return nil, true, nil
	}
	srv := httptest.NewServer(Handler(nil, metrics.New(), Options{Token: "t", Playground: play}))
	defer srv.Close()
	const n = 8
	type answer struct {
		code       int
		retryAfter string
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			req, _ := http.NewRequest("POST", srv.URL+"/playground", strings.NewReader(`{"event":"{}","config":"[filter]\ncondition = 'true'\n"}`))
			req.Header.Set("Authorization", "Bearer t")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{code: -1}
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	running, refused := 0, 0
	for running+refused < n {
		select {
		case <-entered:
			running++
		case a := <-answers:
			if a.code != http.StatusTooManyRequests || a.retryAfter != "1" {
				t.Fatalf("answer %d, Retry-After %q; want 429 with Retry-After: 1", a.code, a.retryAfter)
			}
			refused++
		}
	}
	if running != maxPlaygroundRuns {
		t.Fatalf("%d playground runs admitted at once, %d refused; want %d admitted", running, refused, maxPlaygroundRuns)
	}
	close(release)
	for range running {
		if a := <-answers; a.code != http.StatusOK {
			t.Fatalf("an admitted run answered %d", a.code)
		}
	}
	// The slots are free again.
	go func() { <-entered }()
	if code, body := call(t, "POST", srv.URL+"/playground", `{"event":"{}","config":""}`, "Authorization: Bearer t", "Content-Type: application/json"); code != http.StatusOK {
		t.Fatalf("after the runs ended: %d %s", code, body)
	}
}

// A run is bounded to 10 s: the playground's context ends then, and the
// answer says the run was stopped at the bound (the clock is synctest's).
func TestPlaygroundRunStopsAtItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		play := func(ctx context.Context, event, config string) ([][]byte, bool, error) {
			<-ctx.Done() // a run that would go on
			return nil, false, &PositionError{Message: "filter: condition failed: the condition was stopped: " + ctx.Err().Error(), Stage: "filter"}
		}
		h := Handler(nil, metrics.New(), Options{Token: "t", Playground: play})
		req := httptest.NewRequest("POST", "/playground", strings.NewReader(`{"event":"{}","config":""}`))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"the run was stopped after 10s, the playground's bound: filter: condition failed: the condition was stopped: context deadline exceeded"`) ||
			!strings.Contains(rec.Body.String(), `"stage":"filter"`) {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	})
}
