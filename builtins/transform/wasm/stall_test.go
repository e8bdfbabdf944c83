package wasm

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestHostileTaskDoesNotStallTheProcess runs, in one sluice process, a
// task whose module fills its 32 MiB memory in a loop (each iteration one
// memory.fill, so the loop countdown alone reaches the host's check only
// after minutes) next to an innocent task fed over HTTP, and watches
// /healthz and the innocent task's answers while the hostile task's calls
// are being stopped. Before bulk operations were weighed, the first
// garbage collection after the hostile call began froze the whole process
// until the call ended.
func TestHostileTaskDoesNotStallTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sluice binary")
	}
	dir := t.TempDir()
	writeModule(t, dir, "hog.wasm", wasmtest.ABIModule{Hog: "fill", Pages: DefaultMemoryLimit >> 16}.Bytes())
	var lines strings.Builder
	for i := range 40 {
		fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
	}
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(lines.String()), 0o644)
	ingest, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	os.WriteFile(filepath.Join(dir, "hostile.toml"), []byte(`name = "hostile"
[source]
type = "file"
path = "in.jsonl"

[[transform]]
type = "wasm"
module = "hog.wasm"
timeout = "100ms"

[sink]
type = "file"
path = "hostile-out.jsonl"
`), 0o644)
	os.WriteFile(filepath.Join(dir, "innocent.toml"), []byte(fmt.Sprintf(`name = "innocent"
[source]
type = "http"
address = %q

[sink]
type = "file"
path = "innocent-out.jsonl"
`, ingest)), 0o644)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--log-format", "json",
		"--admin-addr", admin, "--state-dir", filepath.Join(dir, "state"),
		filepath.Join(dir, "innocent.toml"), filepath.Join(dir, "hostile.toml"))
	p.WaitLog(t, "http source listening")

	// Probes: /healthz, and an event posted to the innocent task (its
	// answer comes once the event is written). Each records its slowest
	// answer, an answer still awaited counting for its time so far: a
	// frozen process is seen without waiting for it to thaw.
	client := &http.Client{Timeout: 5 * time.Minute}
	var mu sync.Mutex
	slowest := map[string]time.Duration{}
	counts := map[string]int{}
	inflight := map[string]time.Time{}
	worst := func() (string, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		name, d := "", time.Duration(0)
		for n, s := range slowest {
			if s > d {
				name, d = n, s
			}
		}
		for n, since := range inflight {
			if s := time.Since(since); s > d {
				name, d = n+" (still waiting)", s
			}
		}
		return name, d
	}
	probe := func(ctx context.Context, name string, do func() error) {
		for ctx.Err() == nil {
			start := time.Now()
			mu.Lock()
			inflight[name] = start
			mu.Unlock()
			err := do()
			mu.Lock()
			delete(inflight, name)
			if err == nil {
				slowest[name] = max(slowest[name], time.Since(start))
				counts[name]++
			}
			mu.Unlock()
			if err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
				return
			}
		}
	}
	health := func() error {
		resp, err := client.Get("http://" + admin + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	post := func() error {
		resp, err := client.Post("http://"+ingest+"/", "application/x-ndjson", strings.NewReader(strings.Repeat("{\"ok\":true}\n", 100)))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// The hostile task's calls stopped so far, from /metrics (0 while the
	// process does not answer within a second).
	quick := &http.Client{Timeout: time.Second}
	timeouts := func() int {
		resp, err := quick.Get("http://" + admin + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "sluice_wasm_call_failures_total{") && strings.Contains(l, `reason="timeout"`) && strings.Contains(l, `task="hostile"`) {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				n = int(v)
			}
		}
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, do := range map[string]func() error{"/healthz": health, "innocent task": post} {
		wg.Add(1)
		go func() { defer wg.Done(); probe(ctx, name, do) }()
	}
	// Measure until the hostile task has had five calls stopped (each one
	// hogs until its budget is spent), or a probe waited past the limit.
	limit := testkit.Scale(2 * time.Second)
	testkit.WaitFor(t, "five stopped calls of the hostile task, or a stalled probe", func() bool {
		_, d := worst()
		return d > limit || timeouts() >= 5
	})
	name, d := worst()
	stopped := timeouts()
	cancel()
	if d <= limit {
		wg.Wait() // a stalled probe is left behind: the process is killed at cleanup
	}
	mu.Lock()
	t.Logf("while the hostile task had %d calls stopped: slowest answers %v, answers %v", stopped, slowest, counts)
	mu.Unlock()
	if d > limit {
		t.Fatalf("%s: answered after %v or more while a hostile module ran", name, d)
	}
	if counts["/healthz"] == 0 || counts["innocent task"] == 0 {
		t.Errorf("answers while the hostile module ran: %v", counts)
	}
}
