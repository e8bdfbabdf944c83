package natsredise2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}

var regions = []string{"eu-west", "us-east", "eu-north", "ap-south"}

// order is the JSON body of input record i: deterministic, so that the
// expected output can be computed.
func order(i int) []byte {
	return fmt.Appendf(nil, `{"order_id":"o-%d","seq":%d,"region":%q,"amount":%d,"items":%d}`, i, i, regions[i%len(regions)], (i*37)%250, i%3)
}

type orderFields struct {
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
	Region  string `json:"region"`
	Amount  int    `json:"amount"`
	Items   int    `json:"items"`
}

func orderOf(i int) orderFields {
	var o orderFields
	_ = json.Unmarshal(order(i), &o)
	return o
}

func orders(from, to int) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, order(i))
	}
	return out
}

func writeTask(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// run starts `sluice run` on task with JSON logs.
func run(t *testing.T, name string, env []string, task string) *testkit.Proc {
	t.Helper()
	return testkit.StartSluice(t, testkit.ProcOptions{Name: name, Env: env},
		"run", "--log-format", "json", "--progress", "never", "--shutdown-timeout", "20s", "--state-dir", filepath.Join(t.TempDir(), "state"), task)
}

// loader publishes records in the background at a bounded rate, so that
// processes are killed while input keeps arriving.
type loader struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	sent int
}

func startLoader(n, chunk int, publish func(from, to int) error) *loader {
	l := &loader{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for from := 0; from < n; from += chunk {
			to := min(from+chunk, n)
			if err := publish(from, to); err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			l.sent = to
			l.mu.Unlock()
			time.Sleep(50 * time.Millisecond) // pacing the load, not synchronisation
		}
	}()
	return l
}

func (l *loader) wait(t *testing.T) {
	t.Helper()
	l.wg.Wait()
	if l.err != nil {
		t.Fatalf("loading input: %v", l.err)
	}
}

// seqOf returns the "seq" member of a JSON output.
func seqOf(t *testing.T, data []byte) int {
	t.Helper()
	var v struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Seq == nil {
		t.Fatalf("output %q has no seq: %v", data, err)
	}
	return *v.Seq
}

// checkAll checks that every seq in [0, n) is in counts exactly once or,
// when dupsAllowed, at least once; it returns the duplicates.
func checkAll(t *testing.T, counts map[int]int, n int, dupsAllowed bool) int {
	t.Helper()
	var missing []int
	dups := 0
	for i := range n {
		c := counts[i]
		if c == 0 {
			missing = append(missing, i)
		}
		if c > 1 {
			dups += c - 1
		}
	}
	for s := range counts {
		if s < 0 || s >= n {
			t.Fatalf("output holds seq %d, outside the input", s)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d records missing from the output (first: %v)", len(missing), n, missing[:min(10, len(missing))])
	}
	if dups > 0 && !dupsAllowed {
		t.Fatalf("%d duplicates in the output; want none", dups)
	}
	return dups
}

func natsLocal(t *testing.T) *natstest.Server   { return natstest.Local(t) }
func redisLocal(t *testing.T) *redistest.Server { return redistest.Local(t) }

// metric returns the sum of the samples of the metric name on the admin API
// at addr (0 when absent).
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, ln := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(ln, name+"{") || strings.HasPrefix(ln, name+" ") {
			f := strings.Fields(ln)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// valueOf returns data.value of a nats source's event.
func valueOf(t *testing.T, event string) []byte {
	t.Helper()
	var ev struct {
		Data struct{ Value json.RawMessage }
	}
	if err := json.Unmarshal([]byte(event), &ev); err != nil {
		t.Fatalf("event %s: %v", event, err)
	}
	return ev.Data.Value
}

// redisPayload returns data.fields.payload of a redis source's event.
func redisPayload(t *testing.T, event []byte) []byte {
	t.Helper()
	var ev struct {
		Data struct {
			Fields struct{ Payload json.RawMessage }
		}
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("event %s: %v", event, err)
	}
	return ev.Data.Fields.Payload
}

// example returns the path of an example task of testdata/pipelines.
func example(name string) string {
	return filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", name)
}

func redisLocal2(tb testing.TB) *redistest.Server { return redistest.Local(tb) }
