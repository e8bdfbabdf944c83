package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestE2EConsoleAPI drives the operator's side of a running `sluice run`
// over its admin API, and checks that a secret from the environment
// (${env:...}) shows nowhere: not in the task view, a tap, a playground
// answer, `sluice top`, `sluice tap` or the log.
func TestE2EConsoleAPI(t *testing.T) {
	const secret = "s3cr3t-e2e-value-7f1c"
	const token = "0123456789abcdef-console"
	var got atomic.Int64
	var auth atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		body, _ := io.ReadAll(r.Body)
		got.Add(int64(strings.Count(string(body), "\n")))
	}))
	defer hook.Close()
	dir := t.TempDir()
	task := write(t, dir, "orders.toml", `name = "orders"
description = "generated orders to a web hook"
[source]
type = "generate"
rate = 200
batch_size = 10
[filter]
condition = 'data.amount >= 0'
[[transform]]
type = "template"
template = '{"order":"${id}"}'
variables = { id = "$.data.order_id" }
[sink]
type = "http"
url = "`+hook.URL+`"
token = "${env:SLUICE_E2E_SECRET}"
batch = { max_events = 50, max_wait = "20ms" }
`)
	addr := testkit.FreeAddr(t)
	env := []string{"SLUICE_E2E_SECRET=" + secret, "SLUICE_ADMIN_TOKEN=" + token}
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir, Env: env}, "run", "--state-dir", filepath.Join(dir, "state"),
		"--admin-addr", addr, "--log-level", "debug", task)
	p.WaitLog(t, "task running")
	base := "http://" + addr
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	noSecret := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Fatalf("%s shows the secret:\n%s", what, s)
		}
	}
	testkit.WaitFor(t, "events at the hook", func() bool { return got.Load() > 20 })
	if a, _ := auth.Load().(string); a != "Bearer "+secret {
		t.Fatalf("the sink did not send the token from the environment: %q", a)
	}

	code, body := call("GET", "/tasks/orders", "")
	noSecret("GET /tasks/orders", body)
	var d struct {
		TOML   string
		Stages []struct {
			ID, Type string
			In, Out  uint64
		}
		Counters struct{ Received, Delivered uint64 }
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil || !strings.Contains(d.TOML, `token = "***"`) || len(d.Stages) != 4 || d.Stages[2].Type != "template" {
		t.Fatalf("task view: %d %s", code, body)
	}

	// The tap at the transform shows its outputs; the secret is no event's.
	code, body = call("GET", "/tasks/orders/tap?stage=transform[0]&limit=2", "")
	noSecret("the tap", body)
	if code != 200 || strings.Count(body, "event: record") != 2 || !strings.Contains(body, `"event":{"order":`) {
		t.Fatalf("tap: %d %s", code, body)
	}

	// The playground: the same path as sluice test; a reference to the
	// environment is not resolved there.
	code, body = call("POST", "/playground", `{"event":"{\"data\":{\"n\":5}}","config":"[filter]\ncondition = 'data.n > 3'\n[[transform]]\ntype = \"template\"\ntemplate = '{\"n\":${n}}'\nvariables = { n = \"$.data.n\" }\n"}`)
	if code != 200 || body != `{"outputs":[{"n":5}],"filtered":false}`+"\n" {
		t.Fatalf("playground: %d %s", code, body)
	}
	code, body = call("POST", "/playground", `{"event":"{\"data\":{\"n\":1}}","config":"[filter]\ncondition = 'data.n > 3'\n"}`)
	if code != 200 || !strings.Contains(body, `"filtered":true`) {
		t.Fatalf("playground, filtered: %d %s", code, body)
	}
	code, body = call("POST", "/playground", `{"event":"{}","config":"[[transform]]\ntype = \"constant\"\nvalue = \"${env:SLUICE_E2E_SECRET}\"\n"}`)
	noSecret("the playground", body)
	if code != 400 || !strings.Contains(body, "SLUICE_E2E_SECRET is not set") || !strings.Contains(body, `"line":3`) {
		t.Fatalf("playground with an env reference: %d %s", code, body)
	}
	code, body = call("POST", "/playground", `{"event":"{}","config":"[[transform]]\ntype = \"nope\"\n"}`)
	if code != 400 || !strings.Contains(body, `"line":`) {
		t.Fatalf("playground with an unknown type: %d %s", code, body)
	}

	// Rewinding a generated source is refused, with why.
	if code, body = call("POST", "/tasks/orders/rewind", `{"to":"earliest"}`); code != 409 || !strings.Contains(body, "generate source cannot") {
		t.Fatalf("rewind: %d %s", code, body)
	}

	// The terminal tools, over the same API.
	r := sluiceIn(t, dir, env, "top", "--once", "--admin-addr", addr)
	noSecret("sluice top", r.stdout+r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "orders") || !strings.Contains(r.stdout, "Running") || !strings.Contains(r.stdout, "EVENTS/S") {
		t.Fatalf("sluice top --once: %+v", r)
	}
	r = sluiceIn(t, dir, env, "tap", "orders", "sink", "--limit", "3", "--admin-addr", addr)
	noSecret("sluice tap", r.stdout+r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("sluice tap: %+v", r)
	}
	for _, l := range lines {
		var rec struct {
			Stage string
			Event json.RawMessage
		}
		if json.Unmarshal([]byte(l), &rec) != nil || rec.Stage != "sink" || !strings.Contains(string(rec.Event), `"order"`) {
			t.Fatalf("sluice tap line %q", l)
		}
	}
	r = sluiceIn(t, dir, []string{"SLUICE_ADMIN_TOKEN=wrong-token-0123456789"}, "top", "--once", "--admin-addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("sluice top with a wrong token: %+v", r)
	}

	// The metrics and the log.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var metrics strings.Builder
	for sc.Scan() {
		metrics.WriteString(sc.Text() + "\n")
	}
	resp.Body.Close()
	for _, m := range []string{"process_resident_memory_bytes", `sluice_build_info{`, `sluice_task_state{state="Running",task="orders"} 1`, `sluice_bytes_out_total{task="orders"}`, `sluice_event_latency_seconds_bucket{task="orders"`} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	p.Stop(t)
	log, _ := os.ReadFile(p.Log)
	noSecret("the log", string(log))
	if strings.Contains(string(log), token) {
		t.Fatal("the admin token was logged")
	}
}
