package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/generate"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// runningTask starts a generate → discard task and returns it once Running.
func runningTask(t *testing.T, ms *metrics.Set) *engine.Task {
	t.Helper()
	cfg := &config.Task{
		Name:      "gen",
		Source:    config.Component{Type: "generate", Instance: generate.New(&generate.Config{Rate: 200, BatchSize: 10, Preset: "orders", Seed: 1})},
		Sink:      config.Component{Type: "stdout", Instance: stdout.New(io.Discard)},
		Tolerance: "all",
		Engine:    config.Engine{Concurrency: 1, Order: "partition", MaxInFlight: 4, MaxEvents: 100, MaxEvent: 1 << 20},
	}
	task := runner.New(cfg, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	testkit.WaitFor(t, "the task to run", func() bool { return task.State() == engine.Running })
	return task
}

// call sends one request with "Key: value" headers and returns the status
// and body.
func call(t *testing.T, method, url, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMutationsNeedTokenJSONAndSameOrigin: pause and resume take effect
// only with the bearer token, a JSON content type and no cross-origin
// marks; everything else is refused with a status that says why, and the
// task keeps running.
func TestMutationsNeedTokenJSONAndSameOrigin(t *testing.T) {
	ms := metrics.New()
	task := runningTask(t, ms)
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{Token: "s3cret"}))
	defer srv.Close()
	pause := srv.URL + "/tasks/gen/pause"
	const auth = "Authorization: Bearer s3cret"
	const js = "Content-Type: application/json"

	refused := []struct {
		name    string
		code    int
		body    string
		headers []string
	}{
		{"no token", 401, "", []string{js}},
		{"wrong token", 401, "", []string{js, "Authorization: Bearer nope"}},
		{"token in another scheme", 401, "", []string{js, "Authorization: Basic czNjcmV0"}},
		{"cross-site form post (a web page)", 403, "x=1", []string{"Content-Type: application/x-www-form-urlencoded", "Origin: https://evil.example", "Sec-Fetch-Site: cross-site"}},
		{"form post even with the token", 415, "x=1", []string{auth, "Content-Type: application/x-www-form-urlencoded"}},
		{"no content type", 415, "", []string{auth}},
		{"text/plain (a simple CORS request)", 415, "{}", []string{auth, "Content-Type: text/plain"}},
		{"cross-site fetch with the token", 403, "{}", []string{auth, js, "Sec-Fetch-Site: cross-site"}},
		{"foreign Origin", 403, "{}", []string{auth, js, "Origin: https://evil.example"}},
		{"body not JSON", 400, "pause!", []string{auth, js}},
		{"body too large", 413, `{"pad":"` + strings.Repeat("x", 2*MaxBody) + `"}`, []string{auth, js}},
		{"DNS rebinding (foreign Host on loopback)", 403, "{}", []string{auth, js, "Host: evil.example:80"}},
	}
	for _, c := range refused {
		code, body := call(t, http.MethodPost, pause, c.body, c.headers...)
		if code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", c.name, code, body, c.code)
		}
		if task.State() != engine.Running {
			t.Fatalf("%s paused the task", c.name)
		}
	}
	for _, body := range []string{"", "{}"} {
		if code, b := call(t, http.MethodPost, pause, body, auth, js, "Sec-Fetch-Site: same-origin"); code != 200 || task.State() != engine.Paused {
			t.Fatalf("pause with token (body %q): %d %s, state %v", body, code, b, task.State())
		}
		if code, b := call(t, http.MethodPost, srv.URL+"/tasks/gen/resume", body, auth, js); code != 200 || task.State() != engine.Running {
			t.Fatalf("resume with token: %d %s, state %v", code, b, task.State())
		}
	}

	// Reads: with a token configured the task views need it; probes and
	// metrics stay open for load balancers and scrapers.
	if code, _ := call(t, http.MethodGet, srv.URL+"/tasks", ""); code != 401 {
		t.Errorf("GET /tasks without the token: %d, want 401", code)
	}
	if code, body := call(t, http.MethodGet, srv.URL+"/tasks", "", auth); code != 200 || !strings.Contains(body, `"gen"`) {
		t.Errorf("GET /tasks with the token: %d %s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := call(t, http.MethodGet, srv.URL+p, ""); code != 200 {
			t.Errorf("GET %s: %d, want 200 without a token", p, code)
		}
	}
}

// TestNoTokenMeansReadOnly: without a token the API still serves reads on
// loopback, but refuses every mutation (a local web page or process must
// not pause tasks).
func TestNoTokenMeansReadOnly(t *testing.T) {
	ms := metrics.New()
	task := runningTask(t, ms)
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{}))
	defer srv.Close()
	code, body := call(t, http.MethodPost, srv.URL+"/tasks/gen/pause", "{}", "Content-Type: application/json")
	if code != 403 || !strings.Contains(body, "admin-token") || task.State() != engine.Running {
		t.Fatalf("pause without a configured token: %d %s, state %v", code, body, task.State())
	}
	if code, _ := call(t, http.MethodGet, srv.URL+"/tasks/gen", ""); code != 200 {
		t.Fatalf("GET /tasks/gen: %d", code)
	}
}

// TestStartRefusesOpenAddressWithoutToken: an API reachable from other
// machines must have a token.
func TestStartRefusesOpenAddressWithoutToken(t *testing.T) {
	ms := metrics.New()
	for _, addr := range []string{":0", "0.0.0.0:0"} {
		s, err := Start(addr, nil, ms, Options{Logger: zerolog.Nop()})
		if err == nil {
			s.Close()
			t.Fatalf("Start(%q) without a token succeeded", addr)
		}
		if !strings.Contains(err.Error(), "token") {
			t.Fatalf("Start(%q): %v, want a message about the token", addr, err)
		}
		// The port must be free again: nothing was left listening.
	}
	s, err := Start("0.0.0.0:0", nil, ms, Options{Token: "t", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Start("127.0.0.1:0", nil, ms, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Addr().(*net.TCPAddr).IP.IsLoopback() {
		t.Fatal("not loopback")
	}
	s.Close()
}

// status sends a GET with "Key: value" headers and returns the status
// without reading the body (a stream's never ends).
func status(t *testing.T, url string, headers ...string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Without a token, a GET of task data from a page of another origin was
// served: docs/security.md says the API refuses cross-origin requests, but
// only mutations were checked, so any web page open in a browser on the
// machine could hold a task's 4 tap slots with streams it cannot even read
// (the operator then got 429), or the /events stream. Such reads are now
// refused, whether the browser says so with Sec-Fetch-Site or, older, with
// a foreign Origin; /metrics, the probes and the console's page stay open
// (found in review).
func TestCrossOriginReadsRefused(t *testing.T) {
	ms := metrics.New()
	task := runningTask(t, ms)
	srv := httptest.NewServer(Handler([]*engine.Task{task}, ms, Options{}))
	defer srv.Close()
	own := "Origin: " + srv.URL
	reads := []string{"/tasks", "/events", "/tasks/gen", "/tasks/gen/tap?stage=sink", "/tasks/gen/dlq"}
	for _, p := range reads {
		for _, h := range []string{"Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site", "Origin: http://evil.example", "Origin: null"} {
			if code := status(t, srv.URL+p, h); code != http.StatusForbidden {
				t.Errorf("GET %s with %s: %d, want 403", p, h, code)
			}
		}
		for _, h := range []string{"Sec-Fetch-Site: same-origin", "Sec-Fetch-Site: none", own, "X-Not-A-Browser: 1"} {
			if code := status(t, srv.URL+p, h); code == http.StatusForbidden {
				t.Errorf("GET %s with %s: 403, want it served", p, h)
			}
		}
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/"} {
		if code := status(t, srv.URL+p, "Sec-Fetch-Site: cross-site"); code != http.StatusOK {
			t.Errorf("GET %s cross-site: %d, want 200 (open)", p, code)
		}
	}
	// A page cannot take the tap slots: more cross-site taps than there
	// are slots, then the operator's tap is served.
	for range engine.MaxTaps + 1 {
		if code := status(t, srv.URL+"/tasks/gen/tap?stage=sink", "Sec-Fetch-Site: cross-site"); code != http.StatusForbidden {
			t.Fatalf("cross-site tap: %d", code)
		}
	}
	if code, _ := call(t, "GET", srv.URL+"/tasks/gen/tap?stage=sink&limit=1", ""); code != http.StatusOK {
		t.Fatalf("the operator's tap: %d", code)
	}
}
