package http

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestHeadersOverTheCapAreRefused: request headers, read before the token
// is checked, are capped at 64 KiB (net/http's default is 1 MiB): an
// unauthenticated client gets 431 and no more of its headers are held.
func TestHeadersOverTheCapAreRefused(t *testing.T) {
	_, base := startSource(t, `token = "secret"`)
	resp, _ := post(t, base+"/", `1`, "Content-Type: application/json", "X-Pad: "+strings.Repeat("x", 80<<10))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("80 KiB of headers answered %d, want 431", resp.StatusCode)
	}
}

// TestMaxConnections: past max_connections, a new connection waits in the
// accept queue until an open one closes, idle keep-alive connections
// included: hostile clients cannot make the source hold header memory on
// as many connections as they open.
func TestMaxConnections(t *testing.T) {
	s, base := startSource(t, "max_connections = 2")
	runEngine(t, s, nil)
	addr := strings.TrimPrefix(base, "http://")
	// Two connections held open, each after one request (keep-alive).
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection: %v %v", resp, err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	// A third client is answered once one of them goes.
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/", "application/json", strings.NewReader("1"))
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	held[0].Close()
	if code := <-done; code != 200 {
		t.Fatalf("third client: %d, want 200 once a connection closed", code)
	}
	s.mu.Lock()
	peak := s.peakConns
	s.mu.Unlock()
	if peak > 2 {
		t.Fatalf("%d connections open at once, want at most max_connections = 2", peak)
	}
	testkit.WaitFor(t, "the closed connection to be counted", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.conns <= 2
	})
}
