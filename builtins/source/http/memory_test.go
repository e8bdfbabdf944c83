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
	"testing"
	"time"

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
