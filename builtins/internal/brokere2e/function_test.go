package brokere2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestFunctionInTask: a task calls a remote function that is down for its
// first calls (503), then enriches records, drops some and rejects one.
// The task's retry policy carries it over the outage; the rejected record
// goes to the dead-letter file with the function's reason.
func TestFunctionInTask(t *testing.T) {
	skipShort(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "cold start", http.StatusServiceUnavailable)
			return
		}
		var events []struct {
			ID   string
			Data struct {
				Seq    int
				Region string
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range events {
			if i > 0 {
				b.WriteByte(',')
			}
			switch {
			case e.Data.Seq == 13:
				b.WriteString(`{"error":"seq 13 is unlucky"}`)
			case e.Data.Region == "us-east":
				b.WriteString(`{"drop":true}`)
			default:
				fmt.Fprintf(&b, `{"output":{"id":%q,"seq":%d,"site":"site-%s"}}`, e.ID, e.Data.Seq, e.Data.Region)
			}
		}
		b.WriteByte(']')
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b.Bytes())
	}))
	defer srv.Close()
	dir := t.TempDir()
	task := filepath.Join(dir, "task.toml")
	if err := os.WriteFile(task, []byte(fmt.Sprintf(`name = "fn"
[source]
type = "stdin"
batch_size = 50
[[transform]]
type = "function"
url = %q
timeout = "5s"
max_batch = 25
[sink]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dlq.jsonl"
[retry]
policy = "custom"
attempts = 5
initial = "50ms"
max = "200ms"
`, srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var in bytes.Buffer
	for i := range n {
		in.Write(order(i))
		in.WriteByte('\n')
	}
	p := testkit.StartSluice(t, testkit.ProcOptions{Stdin: in.Bytes(), Dir: dir}, "run", "--log-format", "json", "--progress", "never", "--state-dir", filepath.Join(dir, "state"), task)
	if err := p.Err(); err != nil {
		p.DumpLog(t)
		t.Fatalf("sluice: %v", err)
	}
	out := lines(t, filepath.Join(dir, "out.jsonl"))
	counts := map[int]int{}
	for _, l := range out {
		var o struct {
			Seq  int
			Site string
		}
		if err := json.Unmarshal(l, &o); err != nil || !strings.HasPrefix(o.Site, "site-") {
			t.Fatalf("output %s", l)
		}
		counts[o.Seq]++
	}
	for i := range n {
		want := 1
		if i%4 == 1 || i == 13 { // us-east is dropped; 13 is rejected
			want = 0
		}
		if counts[i] != want {
			t.Fatalf("record %d arrived %d times, want %d", i, counts[i], want)
		}
	}
	dead := lines(t, filepath.Join(dir, "dlq.jsonl"))
	if len(dead) != 1 || !bytes.Contains(dead[0], []byte("seq 13 is unlucky")) || !bytes.Contains(dead[0], []byte(`"stage":"transform[0]"`)) {
		t.Fatalf("dead letters %s", dead)
	}
	if !p.LogHas("503") {
		t.Fatal("the outage left no trace in the log")
	}
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}
