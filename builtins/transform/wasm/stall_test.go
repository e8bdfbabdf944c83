package wasm

import (
	"bufio"
	"context"
	"fmt"
	"net"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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
	ingest, admin := freeAddr(t), freeAddr(t)
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

	client := &http.Client{Timeout: 5 * time.Minute}
	timeouts := func() int {
		resp, err := client.Get("http://" + admin + "/metrics")
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
	// Probes: /healthz, and an event posted to the innocent task (its
	// answer comes once the event is written). Each records its slowest
	// answer.
	var mu sync.Mutex
	slowest := map[string]time.Duration{}
	counts := map[string]int{}
	probe := func(name string, do func() error) func(context.Context) {
		return func(ctx context.Context) {
			for ctx.Err() == nil {
				start := time.Now()
				if err := do(); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				slowest[name] = max(slowest[name], time.Since(start))
				counts[name]++
				mu.Unlock()
			}
		}
	}
	health := probe("/healthz", func() error {
		resp, err := client.Get("http://" + admin + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	post := probe("innocent task", func() error {
		resp, err := client.Post("http://"+ingest+"/", "application/x-ndjson", strings.NewReader(strings.Repeat("{\"ok\":true}\n", 100)))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	// Wait until the hostile task is at work, then measure while it has
	// calls stopped (each one hogs until its budget is spent).
	testkit.WaitFor(t, "the hostile task's first stopped call", func() bool { return timeouts() >= 1 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){health, post} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	first := timeouts()
	testkit.WaitFor(t, "five more stopped calls of the hostile task", func() bool { return timeouts() >= first+5 })
	cancel()
	wg.Wait()
	t.Logf("while the hostile task had %d calls stopped: slowest answers %v, answers %v", timeouts()-first, slowest, counts)
	for name, d := range slowest {
		if limit := testkit.Scale(2 * time.Second); d > limit {
			t.Errorf("%s answered after %v while a hostile module ran", name, d)
		}
	}
	if counts["/healthz"] == 0 || counts["innocent task"] == 0 {
		t.Errorf("answers while the hostile module ran: %v", counts)
	}
}
