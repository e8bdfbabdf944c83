package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestHTTPEventBuiltOverLimitIsRejected: an element under max_event_size
// whose event (wrapped in a CloudEvent) is over it is the source's own
// rejection, counted in the answer's "rejected" and dead-lettered with a
// reason that names the request and element. It was answered 200
// "rejected":0, then dead-lettered by the engine at stage decode with a
// size the client never sent (review).
func TestHTTPEventBuiltOverLimitIsRejected(t *testing.T) {
	dir := t.TempDir()
	addr := testkit.FreeAddr(t)
	task := engine.New(load(t, dir, `name = "h"
max_event_size = "1KiB"
[source]
type = "http"
address = "`+addr+`"
[sink]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dlq.jsonl"
`), opts(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() })
	url := "http://" + addr + "/"
	testkit.WaitFor(t, "the http source to listen", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	line := strings.Repeat("x", 1000) // under the 1024-byte limit; its event is not
	resp, err := http.Post(url, "text/plain", strings.NewReader(line+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var ans struct{ Accepted, Rejected int }
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("answer %d %s: %v", resp.StatusCode, body, err)
	}
	recs := dlqRecords(t, filepath.Join(dir, "dlq.jsonl"))
	if ans.Accepted != 0 || ans.Rejected != 1 || len(recs) != 1 {
		t.Fatalf("answer %d %s, %d dead letters %v: want 0 accepted, 1 rejected and its dead letter", resp.StatusCode, body, len(recs), recs)
	}
	msg, _ := json.Marshal(recs[0]["error"])
	for _, want := range []string{"element", "1000 bytes", "limit is 1024"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("dead letter's error %s lacks %q", msg, want)
		}
	}
}
