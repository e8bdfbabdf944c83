package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// edgeBacklog is the backlog of TestE2EStoreAndForwardAcrossKill9: 24MiB
// by default, so that the test stays within a couple of minutes on a loaded
// machine; SLUICE_EDGE_BACKLOG=1GiB runs the full size (a stress
// run, see docs/edge.md).
func edgeBacklog(t *testing.T) int64 {
	s := os.Getenv("SLUICE_EDGE_BACKLOG")
	if s == "" {
		return 24 << 20
	}
	var b component.ByteSize
	if err := b.UnmarshalText([]byte(s)); err != nil {
		t.Fatalf("SLUICE_EDGE_BACKLOG=%q: %v", s, err)
	}
	return int64(b)
}

// scrape returns the value of a metric of the running process (-1 when
// absent).
func scrape(t *testing.T, admin, name string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestE2EStoreAndForwardAcrossKill9: the uplink is down while a file of
// events (edgeBacklog bytes) is read into the disk buffer under a
// compressed retry schedule that gives up after 2 retries without a
// buffer; sluice is killed with SIGKILL in the middle and started again,
// still offline; the backlog gauges show every event; once the link is back
// the backlog drains in order and nothing is lost.
func TestE2EStoreAndForwardAcrossKill9(t *testing.T) {
	backlog := edgeBacklog(t)
	var up atomic.Bool
	var tries atomic.Int64
	var mu sync.Mutex
	var got []int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		body, _ := io.ReadAll(r.Body)
		if !up.Load() {
			http.Error(w, "uplink down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var ev struct{ Data struct{ N int } }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Errorf("undecodable delivery %q: %v", l, err)
				continue
			}
			got = append(got, ev.Data.N)
		}
	}))
	defer hook.Close()

	dir := t.TempDir()
	pad := strings.Repeat("x", 400)
	f, err := os.Create(filepath.Join(dir, "in.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	events := 0
	for size := int64(0); size < backlog; events++ {
		n, _ := fmt.Fprintf(w, `{"n":%d,"sensor":"line-3","pad":%q}`+"\n", events, pad)
		size += int64(n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	admin := testkit.FreeAddr(t)
	task := write(t, dir, "edge.toml", fmt.Sprintf(`name = "edge"
[source]
type = "file"
path = "in.jsonl"
[sink]
type = "http"
url = %q
batch = { max_events = 500, max_wait = "20ms" }
buffer = { type = "disk", path = "buffer", max_size = "%dB" }
[retry]
policy = "custom"
attempts = 2
initial = "10ms"
max = "50ms"
`, hook.URL, 2*backlog+(64<<20)))
	state := filepath.Join(dir, "state")
	args := []string{"run", "--state-dir", state, "--admin-addr", admin, "--log-format", "json", task}

	p := testkit.StartSluice(t, testkit.ProcOptions{Name: "sluice-1"}, args...)
	testkit.WaitFor(t, "part of the file in the buffer", func() bool {
		return scrape(t, admin, "sluice_buffer_records") > 0
	})
	p.Kill() // SIGKILL, in the middle of the ingest or of the outage
	<-p.Done()
	before := tries.Load()

	p = testkit.StartSluice(t, testkit.ProcOptions{Name: "sluice-2"}, args...)
	testkit.WaitForWithin(t, testkit.DefaultWait*3, "every event in the buffer after the restart", func() bool {
		return scrape(t, admin, "sluice_buffer_records") >= float64(events)
	})
	testkit.WaitFor(t, "the sink tried past its policy after the restart", func() bool { return tries.Load() > before+3 })
	if n := scrape(t, admin, "sluice_buffer_bytes"); n < float64(backlog) {
		t.Fatalf("sluice_buffer_bytes = %v with %d bytes of events buffered", n, backlog)
	}
	if n := scrape(t, admin, "sluice_buffer_oldest_age_seconds"); n < 0 {
		t.Fatalf("sluice_buffer_oldest_age_seconds = %v", n)
	}
	if n := scrape(t, admin, "sluice_events_dead_lettered_total"); n > 0 {
		t.Fatalf("%v events dead-lettered during the outage", n)
	}
	if n := scrape(t, admin, "sluice_events_dropped_total"); n > 0 {
		t.Fatalf("%v events dropped during the outage", n)
	}

	up.Store(true) // the link is back: the task drains and ends (read mode)
	testkit.WaitForWithin(t, testkit.DefaultWait*5, "the backlog to drain and sluice to end", p.Exited)
	if err := p.Err(); err != nil {
		t.Fatalf("sluice exited with %v after the drain", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// At-least-once: records appended before the kill but after the
	// source's last checkpoint are read and buffered again, so a stretch
	// may repeat; the first arrivals are every event, in order.
	next, dups := 0, 0
	for _, n := range got {
		switch {
		case n == next:
			next++
		case n < next:
			dups++
		default:
			t.Fatalf("event %d arrived before event %d: lost or out of order", n, next)
		}
	}
	if next != events {
		t.Fatalf("%d of %d events arrived", next, events)
	}
	t.Logf("%d events (%d MiB) drained in order after a kill -9 mid-outage; %d repeated (at-least-once)", events, backlog>>20, dups)
}
