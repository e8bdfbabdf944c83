package http

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
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
