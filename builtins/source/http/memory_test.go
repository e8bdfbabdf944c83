package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// tinyElements is ~10 MiB of single-digit elements: 5,242,880 of them, as
// NDJSON or as one JSON array.
func tinyElements(array bool) []byte {
	const n = 5 << 20
	var b bytes.Buffer
	b.Grow(2*n + 2)
	if array {
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('0' + byte(i%10))
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	for i := range n {
		b.WriteByte('0' + byte(i%10))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestTinyElementsMemoryBounded: a ~10 MiB body of millions of tiny
// elements is handed to the task in batches, so the process's memory stays
// near what one body and a few batches take, instead of growing with the
// element count (each element becomes a ~200-byte event plus its record).
// The client still gets 200 only once every event was delivered.
func TestTinyElementsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 5 million events through a sluice process")
	}
	for _, c := range []struct {
		name, ct string
		array    bool
	}{{"ndjson", "application/x-ndjson", false}, {"json-array", "application/json", true}} {
		t.Run(c.name, func(t *testing.T) {
			body := tinyElements(c.array)
			peak := ingestPeak(t, c.ct, body, 5<<20)
			t.Logf("%s: %.1f MiB body of %d elements: peak RSS %.1f MiB", c.name, float64(len(body))/(1<<20), 5<<20, float64(peak)/(1<<20))
			if peak > memoryBound {
				t.Fatalf("peak RSS %.0f MiB, want below %d MiB", float64(peak)/(1<<20), memoryBound>>20)
			}
		})
	}
}

// memoryBound is generous: the documented bound for one request is about
// max_body_size (16 MiB here) plus a few batches of events, on top of the
// runtime's own ~20 MiB.
const memoryBound = 160 << 20

// ingestPeak runs a sluice process with an HTTP source, posts body and
// returns the process's peak RSS once the 200 arrived and the events were
// written. A process that passes 1.5 GiB is killed at once: the test has
// failed, and the machine is shared.
func ingestPeak(t *testing.T, ct string, body []byte, want int) int64 {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out := filepath.Join(dir, "out.txt")
	task := filepath.Join(dir, "task.toml")
	os.WriteFile(task, []byte(fmt.Sprintf(`name = "tiny"
[source]
type = "http"
address = %q
max_body_size = "16MiB"
response_timeout = "10m"

[[transform]]
type = "template"
template = "${d}"
variables = { d = "$.data" }

[sink]
type = "file"
path = %q
`, addr, out)), 0o644)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"), task)
	p.WaitLog(t, "http source listening")
	if _, _, err := p.Memory(); err != nil {
		t.Skipf("cannot read the process's memory: %v", err)
	}

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	const killAt = 1536 << 20
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			_, peak, _ = p.Memory()
			if r.err != nil || r.code != 200 || !strings.Contains(r.body, fmt.Sprintf(`"accepted":%d,`, want)) {
				t.Fatalf("answer: %d %q %v", r.code, r.body, r.err)
			}
			data, err := os.ReadFile(out)
			if err != nil || bytes.Count(data, []byte("\n")) != want {
				t.Fatalf("%d lines written (%v), want %d", bytes.Count(data, []byte("\n")), err, want)
			}
			p.Stop(t)
			return peak
		case <-tick.C:
			if _, hwm, err := p.Memory(); err == nil && hwm > killAt {
				p.Kill()
				t.Fatalf("peak RSS passed %d MiB while the request was handled; killed", killAt>>20)
			}
		}
	}
}

// TestAbandonedRequestKeepsItsBodyBudget: a request answered 503 after the
// task took its events (response_timeout) leaves them with the task, and a
// dead-lettered element among them is a slice of the request's body. The
// body's share of the memory budget must stay taken until the task is done
// with the events; before, it was released with the answer, so clients
// timing out against a slow task got more bodies into memory than
// max_requests × max_body_size (here: a second whole body while the task
// still held the first).
func TestAbandonedRequestKeepsItsBodyBudget(t *testing.T) {
	s, base := startSource(t, "format = \"json\"\nmax_requests = 1\nmax_body_size = \"256KiB\"\nresponse_timeout = \"300ms\"\n")
	var mu sync.Mutex
	var held []component.Batch
	runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, b)
		return 0, false, nil // a task that does not get to the events in time
	})
	// 250 KiB of lines that are not JSON: each is dead-lettered, its
	// payload a slice of the body.
	body := strings.Repeat(strings.Repeat("x", 1023)+"\n", 250)
	resp, answer := post(t, base+"/", body, "Content-Type: application/x-ndjson", "X-Request-Id: first")
	if resp.StatusCode != 503 || !strings.Contains(answer, "may still be delivered") {
		t.Fatalf("first request: %d %s, want 503 (taken, not confirmed)", resp.StatusCode, answer)
	}
	mu.Lock()
	first := held[0]
	mu.Unlock()
	if p := first.Messages[0]; p.Err == nil || len(p.Payload) != 1023 {
		t.Fatalf("first element: err %v, %d bytes; want dead-lettered with its line", p.Err, len(p.Payload))
	}

	// The task still holds the first body: a second one does not fit.
	resp, answer = post(t, base+"/", body, "Content-Type: application/x-ndjson", "X-Request-Id: second")
	if resp.StatusCode != 503 || !strings.Contains(answer, "too many request bodies in memory") {
		t.Errorf("second request while the task holds the first body: %d %s, want 503 (memory budget)", resp.StatusCode, answer)
	}
	mu.Lock()
	n := len(held)
	mu.Unlock()
	if n != 1 {
		t.Errorf("the task was handed %d batches, want only the first request's", n)
	}

	// Once the task is done with the first request's events, its budget
	// is free again.
	first.Ack(nil)
	resp, answer = post(t, base+"/", body, "Content-Type: application/x-ndjson", "X-Request-Id: third")
	if resp.StatusCode != 503 || !strings.Contains(answer, "may still be delivered") {
		t.Fatalf("third request after the first was handled: %d %s, want it taken by the task (503, not confirmed)", resp.StatusCode, answer)
	}
}
