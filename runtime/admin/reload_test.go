package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// TestReloadRoute: POST /reload is guarded like pause, answers 422 with
// every problem of invalid files and 200 with what changed; the task views
// follow the set Options.Tasks returns.
func TestReloadRoute(t *testing.T) {
	ms := metrics.New()
	task := runningTask(t, ms)
	var mu sync.Mutex
	current := []*engine.Task{task}
	var calls atomic.Int32
	var answer func() (ReloadResult, error)
	opts := Options{
		Token: "s3cret",
		Tasks: func() []*engine.Task {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(current)
		},
		Reload: func(ctx context.Context) (ReloadResult, error) {
			calls.Add(1)
			return answer()
		},
	}
	srv := httptest.NewServer(Handler(nil, ms, opts))
	defer srv.Close()
	const auth = "Authorization: Bearer s3cret"
	const js = "Content-Type: application/json"
	url := srv.URL + "/reload"

	answer = func() (ReloadResult, error) { return ReloadResult{Unchanged: []string{"gen"}}, nil }
	for _, c := range []struct {
		name    string
		code    int
		headers []string
	}{
		{"no token", 401, []string{js}},
		{"not JSON", 415, []string{auth}},
		{"cross-site", 403, []string{auth, js, "Sec-Fetch-Site: cross-site"}},
	} {
		if code, body := call(t, http.MethodPost, url, "", c.headers...); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refused requests reloaded %d times", n)
	}

	answer = func() (ReloadResult, error) {
		return ReloadResult{}, &ReloadError{Problems: []string{"a.toml:3:8: source.rate: must be at least 0", "b.toml:1:1: name: required"}}
	}
	code, body := call(t, http.MethodPost, url, "{}", auth, js)
	var refused struct {
		Error    string
		Problems []string
	}
	if err := json.Unmarshal([]byte(body), &refused); err != nil || code != 422 || len(refused.Problems) != 2 ||
		refused.Problems[0] != "a.toml:3:8: source.rate: must be at least 0" || !strings.Contains(refused.Error, "invalid task files") {
		t.Fatalf("invalid files: %d %s", code, body)
	}

	answer = func() (ReloadResult, error) {
		return ReloadResult{}, errors.New("reload refused: the process is stopping")
	}
	if code, body := call(t, http.MethodPost, url, "", auth, js); code != 503 || !strings.Contains(body, "stopping") {
		t.Fatalf("while stopping: %d %s", code, body)
	}

	// A reload that stops gen: the views follow the new set at once.
	answer = func() (ReloadResult, error) {
		mu.Lock()
		current = nil
		mu.Unlock()
		return ReloadResult{Stopped: []string{"gen"}}, nil
	}
	code, body = call(t, http.MethodPost, url, "", auth, js)
	if code != 200 || body != `{"started":[],"stopped":["gen"],"restarted":[],"unchanged":[]}`+"\n" {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, body := call(t, http.MethodGet, srv.URL+"/tasks", "", auth); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tasks after the reload: %d %s", code, body)
	}
	if code, _ := call(t, http.MethodGet, srv.URL+"/tasks/gen", "", auth); code != 404 {
		t.Fatalf("a removed task: %d, want 404", code)
	}
}

// TestNoReloadFuncNoRoute: without Options.Reload there is no /reload.
func TestNoReloadFuncNoRoute(t *testing.T) {
	srv := httptest.NewServer(Handler(nil, metrics.New(), Options{Token: "s3cret"}))
	defer srv.Close()
	if code, _ := call(t, http.MethodPost, srv.URL+"/reload", "", "Authorization: Bearer s3cret", "Content-Type: application/json"); code != 404 && code != 405 {
		t.Fatalf("POST /reload without a reload func: %d", code)
	}
}
