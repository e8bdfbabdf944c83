package http

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestCloseEndsABodyBeingReceived: a request whose body is still arriving
// when the source closes is answered 503 at once and its connection closed.
// Close waited for its handler until its own deadline passed (up to
// read_timeout), and the client got no answer; in a task, that ate the
// shutdown deadline the sink's and the dead-letter queue's Close share
// (review).
func TestCloseEndsABodyBeingReceived(t *testing.T) {
	s, _ := startSource(t, `read_timeout = "120s"
min_body_rate = "0"`)
	runEngine(t, s, nil)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and the first 10 of 100 announced bytes.
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100\r\n\r\n{\"n\":1}\n")
	testkit.WaitFor(t, "the body to be received", func() bool { return len(s.budget.units) > 0 })

	answer := make(chan string, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- "no answer: " + err.Error()
			return
		}
		resp.Body.Close()
		answer <- resp.Status
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cerr := s.Close(ctx)
	got := <-answer
	if cerr != nil || got[:3] != "503" {
		t.Fatalf("Close: %v; the client whose body was being received got: %s (want Close to end it and answer 503)", cerr, got)
	}
}

// TestCloseWhileWaitingForMemory: a body waiting for room in the body budget
// when the source closes is told the source is shutting down. It was
// answered "too many request bodies in memory (max_requests ×
// max_body_size)", sending the operator after a limit that had nothing to
// do with it.
func TestCloseWhileWaitingForMemory(t *testing.T) {
	// A budget of four units of 64 KiB: two bodies of 64 KiB fill it.
	s, _ := startSource(t, `read_timeout = "120s"
min_body_rate = "0"
response_timeout = "120s"
max_requests = 1
max_body_size = "64KiB"`)
	runEngine(t, s, nil)
	answers := make(chan string, 3)
	for range 3 {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 65536\r\n\r\n{\"n\":1}\n")
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				answers <- "no answer: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- resp.Status + " " + string(b)
		}()
	}
	testkit.WaitFor(t, "two bodies to fill the budget and a third to wait for room", func() bool {
		s.mu.Lock()
		n := len(s.bodies)
		s.mu.Unlock()
		return n == 3 && len(s.budget.units) == cap(s.budget.units)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := <-answers; !strings.HasPrefix(got, "503") || !strings.Contains(got, "shutting down") {
			t.Errorf("answer %q, want 503 \"source is shutting down\"", got)
		}
	}
}
