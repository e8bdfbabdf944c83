package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}

// chromiumPath is Debian's chromium (apt-get install chromium), or
// SLUICE_CHROMIUM.
func chromiumPath() string {
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browserTools returns node and the browser test's folder, or skips the
// test saying what is missing (fails under SLUICE_INTEGRATION=1, where
// .ci/run installs them).
func browserTools(t *testing.T) (node, dir string) {
	t.Helper()
	dir = filepath.Join(testkit.RepoRoot(), "runtime", "admin", "console", "browsertest")
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install nodejs)")
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		missing = append(missing, chromiumPath()+" (apt-get install chromium, or set SLUICE_CHROMIUM)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "playwright-core (cd runtime/admin/console/browsertest && npm ci)")
	}
	if len(missing) > 0 {
		msg := "the console's browser test needs " + strings.Join(missing, ", ")
		if testkit.Integration() {
			t.Fatal(msg + " (SLUICE_INTEGRATION=1: .ci/run installs them)")
		}
		t.Skip(msg + "; skipping (SLUICE_INTEGRATION=1 fails instead)")
	}
	return node, dir
}

// hookSink is the webhook the test's second task posts to: it refuses every
// request (400, so the events go to the dead-letter file) until accept is
// set, then keeps what it receives, which /received lists for the browser
// test (a replayed dead letter must arrive here).
type hookSink struct {
	accept   atomic.Bool
	mu       sync.Mutex
	received []json.RawMessage
	auth     atomic.Value // the last Authorization header: proves the secret reached the sink
}

func (s *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/received" {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.received)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.auth.Store(r.Header.Get("Authorization"))
	if !s.accept.Load() {
		http.Error(w, "not yet", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		if len(line) > 0 {
			s.received = append(s.received, json.RawMessage(bytes.Clone(line)))
		}
	}
}

// TestBrowser drives the console in headless Chromium against a real
// `sluice run` with an admin token: test.mjs (playwright-core) goes through
// every page and checks what a person would (counters move, pause and
// resume, the tap, a dead letter replayed from the browser reaching the
// sink, the playground's output and positioned error, a wrong token
// refused, a ${env:...} secret never shown), saving a screenshot of each
// page in the folder it prints.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sluice and a browser: not in -short")
	}
	node, testDir := browserTools(t)

	const token = "console-test-token-0123456789"
	const secret = "s3cr3t-hook-value-never-shown"
	dir := t.TempDir()
	hook := &hookSink{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()

	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orders := write("orders.toml", `name = "orders"
description = "Generated orders: EU ones, reshaped"

[source]
type = "generate"
rate = 20
batch_size = 2

[filter.pattern.data]
region = [{ prefix = "eu-" }]

[[transform]]
type = "template"
variables = { order = "$.data.order_id", amount = "$.data.amount", region = "$.data.region" }
template = '{"order":"${order}","amount":${amount},"region":"${region}"}'

[sink]
type = "file"
path = "orders.out.jsonl"
`)
	webhook := write("webhook.toml", `name = "webhook"
description = "Orders posted to a webhook that refuses them at first"

[source]
type = "generate"
rate = 4
batch_size = 1
seed = 7

[sink]
type = "http"
url = "`+hookSrv.URL+`/hook"
token = "${env:SLUICE_TEST_HOOK_SECRET}"
batch = { max_events = 1, max_wait = "10ms" }

[dead_letter]
type = "file"
path = "webhook.dlq.jsonl"
`)
	shots := os.Getenv("SLUICE_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "sluice-console-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// Pictures of an earlier run (a failure's above all) would mislead.
	old, _ := filepath.Glob(filepath.Join(shots, "*.png"))
	for _, f := range old {
		os.Remove(f)
	}

	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir, Env: []string{
		"SLUICE_ADMIN_TOKEN=" + token,
		"SLUICE_TEST_HOOK_SECRET=" + secret,
	}}, "run", "--state-dir", filepath.Join(dir, "state"), "--admin-addr", "127.0.0.1:0", "--log-format", "json", orders, webhook)
	p.WaitLog(t, "admin API listening")
	addr := adminAddr(t, p.Log)
	testkit.WaitFor(t, "both tasks to run", func() bool { return strings.Count(readFile(p.Log), `"task running"`) >= 2 || p.Exited() })

	// Some dead letters first (the webhook refuses everything), then the
	// webhook takes what comes: a dead letter replayed from the browser
	// reaches it.
	dlq := filepath.Join(dir, "webhook.dlq.jsonl")
	testkit.WaitFor(t, "3 dead letters", func() bool { return strings.Count(readFile(dlq), "\n") >= 3 })
	hook.accept.Store(true)
	if a, _ := hook.auth.Load().(string); a != "Bearer "+secret {
		t.Fatalf("the webhook got Authorization %q: the secret did not reach the sink, so the test would prove nothing", a)
	}

	// A reverse proxy serving the API under a path prefix, as
	// docs/operations.md's nginx example does: the console must keep every
	// call under the prefix.
	target, _ := url.Parse("http://" + addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // event streams pass at once
	prefixed := http.NewServeMux()
	prefixed.Handle("/sluice/", http.StripPrefix("/sluice", proxy))
	prefixed.Handle("/sluice", http.RedirectHandler("/sluice/", http.StatusMovedPermanently))
	proxySrv := httptest.NewServer(prefixed)
	defer proxySrv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(6*time.Minute))
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "test.mjs")
	cmd.Dir = testDir
	cmd.Env = append(os.Environ(),
		"SLUICE_URL=http://"+addr+"/",
		"SLUICE_TOKEN="+token,
		"SLUICE_SECRET="+secret,
		"SLUICE_SECRET_ENV=SLUICE_TEST_HOOK_SECRET",
		"SINK_RECEIVED_URL="+hookSrv.URL+"/received",
		"PROXY_URL="+proxySrv.URL+"/sluice/",
		"TASK_FILE="+orders,
		"SCREENSHOTS="+shots,
		"CHROMIUM="+chromiumPath(),
		fmt.Sprintf("WAIT_MS=%d", testkit.Scale(testkit.DefaultWait).Milliseconds()),
		"DOC_IMAGES="+os.Getenv("SLUICE_CONSOLE_DOC_IMAGES"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node test.mjs:\n%s", out)
	t.Logf("screenshots of the console: %s", shots)
	if err != nil {
		t.Fatalf("the browser test failed (%v): see its output above", err)
	}
	if !bytes.Contains(out, []byte("all scenarios passed")) {
		t.Fatal("test.mjs ended without saying every scenario passed")
	}
	p.Stop(t)
	log := readFile(p.Log)
	for what, s := range map[string]string{"the secret": secret, "the admin token": token} {
		if strings.Contains(log, s) {
			t.Errorf("sluice logged %s", what)
		}
	}
}

var listening = regexp.MustCompile(`"address":"([^"]+)"[^\n]*"admin API listening"`)

// adminAddr reads the address the admin API took (--admin-addr
// 127.0.0.1:0: the OS picks a free port, no race with other tests).
func adminAddr(t *testing.T, logPath string) string {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no admin address in %s", logPath)
	return ""
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
