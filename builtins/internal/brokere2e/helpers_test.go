package brokere2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}

// skipShort skips the multi-second process tests under -short.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sluice processes for several seconds; skipped with -short")
	}
}

// run starts `sluice run` on task files.
func run(t *testing.T, name string, env []string, tasks ...string) *testkit.Proc {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	args := append([]string{"run", "--log-format", "json", "--progress", "never", "--shutdown-timeout", "20s", "--state-dir", state}, tasks...)
	return testkit.StartSluice(t, testkit.ProcOptions{Name: name, Env: env}, args...)
}

func writeTask(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// order is the body of input record seq.
func order(seq int) []byte {
	regions := []string{"eu-west", "us-east", "eu-north", "ap-south"}
	return fmt.Appendf(nil, `{"seq":%d,"order_id":"o-%d","region":%q,"amount":%d,"items":%d}`, seq, seq, regions[seq%len(regions)], (seq*37)%250, seq%5)
}

// orders returns the bodies of records from..to-1.
func orders(from, to int) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, order(i))
	}
	return out
}

// seqOf reads the seq of an output record of the tasks below.
func seqOf(t testing.TB, b []byte) int {
	var o struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(b, &o); err != nil || o.Seq == nil {
		t.Fatalf("output %q is not a task output: %v", b, err)
	}
	return *o.Seq
}

// tally counts how often each seq arrived.
func tally(t testing.TB, bodies [][]byte) map[int]int {
	counts := map[int]int{}
	for _, b := range bodies {
		counts[seqOf(t, b)]++
	}
	return counts
}

// checkAll fails unless every seq in [0, n) arrived, and returns the
// number of duplicates.
func checkAll(t *testing.T, counts map[int]int, n int) int {
	t.Helper()
	var missing []int
	total := 0
	for i := range n {
		if counts[i] == 0 {
			missing = append(missing, i)
		}
		total += counts[i]
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = missing[:20]
		}
		t.Fatalf("%d of %d records never arrived (first: %v)", n-len(counts), n, missing)
	}
	var extra []int
	for s := range counts {
		if s < 0 || s >= n {
			extra = append(extra, s)
		}
	}
	sort.Ints(extra)
	if len(extra) > 0 {
		t.Fatalf("records that were never produced arrived: %v", extra)
	}
	return total - n
}

// bodies returns the bodies of deliveries.
func bodies(ds []amqp.Delivery) [][]byte {
	out := make([][]byte, len(ds))
	for i := range ds {
		out[i] = ds[i].Body
	}
	return out
}
