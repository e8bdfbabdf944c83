package http

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// trickler is a client that sends its request headers, then its body two
// bytes at a time every 100 ms (slowloris), until the server answers or
// cuts it off.
type trickler struct {
	sent   atomic.Int64
	status atomic.Int32 // the answer's status; -1: cut without an answer
	ended  atomic.Int64 // nanoseconds from start until the answer or the cut
}

func startTrickler(t *testing.T, addr, extraHeaders string) *trickler {
	t.Helper()
	tr := &trickler{}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000000\r\n%s\r\n", addr, extraHeaders)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond) // the pace of the attack, not synchronisation
		defer tick.Stop()
		for {
			if _, err := conn.Write([]byte("1\n")); err != nil {
				return
			}
			tr.sent.Add(1)
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		defer close(stop)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		code := int32(-1)
		if err == nil {
			code = int32(resp.StatusCode)
			resp.Body.Close()
		}
		tr.ended.Store(int64(time.Since(start)))
		tr.status.Store(code)
		conn.Close()
	}()
	return tr
}

// TestSlowSenders: clients that trickle their bodies must not keep a
// legitimate client out. With four request slots and eight tricklers, a
// normal request is answered 200 at once (a body being received holds no
// slot), and each trickler is cut off with 408 once it fell below
// min_body_rate, long before read_timeout. With a token, tricklers without
// it are refused before their body is read; tricklers with it are cut off
// like the others.
func TestSlowSenders(t *testing.T) {
	for _, c := range []struct {
		name, keys, auth, legit string
	}{
		{name: "no token"},
		{name: "token", keys: `token = "s3cret"`, auth: "Authorization: Bearer s3cret\r\n", legit: "Authorization: Bearer s3cret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, base := startSource(t, "max_requests = 4\nread_timeout = \"60s\"\n"+c.keys)
			runEngine(t, s, nil)
			addr := strings.TrimPrefix(base, "http://")
			var ts []*trickler
			for range 8 {
				ts = append(ts, startTrickler(t, addr, c.auth))
			}
			var anon []*trickler
			if c.auth != "" {
				for range 4 {
					anon = append(anon, startTrickler(t, addr, ""))
				}
			}
			testkit.WaitFor(t, "every trickler to send a few bytes", func() bool {
				for _, tr := range ts {
					if tr.sent.Load() < 3 {
						return false
					}
				}
				return true
			})
			began := time.Now()
			headers := []string{"Content-Type: application/json"}
			if c.legit != "" {
				headers = append(headers, c.legit)
			}
			resp, body := post(t, base+"/", `{"n":1}`, headers...)
			took := time.Since(began)
			if resp.StatusCode != 200 {
				t.Fatalf("legitimate client answered %d after %v while 8 clients trickled: %s", resp.StatusCode, took, body)
			}
			t.Logf("legitimate client: 200 after %v, with 8 tricklers connected", took.Round(time.Millisecond))

			testkit.WaitFor(t, "every trickler to be cut off", func() bool {
				for _, tr := range append(ts, anon...) {
					if tr.status.Load() == 0 {
						return false
					}
				}
				return true
			})
			var longest time.Duration
			for i, tr := range ts {
				if st := tr.status.Load(); st != http.StatusRequestTimeout {
					t.Errorf("trickler %d: status %d, want 408", i, st)
				}
				longest = max(longest, time.Duration(tr.ended.Load()))
			}
			t.Logf("tricklers cut off after at most %v (read_timeout 60s, min_body_rate 16KiB/s after 5s)", longest.Round(time.Millisecond))
			// Generous: the rate cuts them after about 5 s; read_timeout
			// would take 60 s.
			if longest > 30*time.Second {
				t.Errorf("tricklers held on for %v: the rate limit did not apply", longest)
			}
			for i, tr := range anon {
				if st := tr.status.Load(); st != http.StatusUnauthorized {
					t.Errorf("trickler %d without the token: status %d, want 401", i, st)
				}
			}
		})
	}
}

// TestClientThatNeverReadsIsDisconnected: a client that sends requests
// (pipelined on one connection) and never reads the answers must not hold
// its connection and a goroutine for ever, nor Close. An answer must be
// taken within the write timeout (read_timeout here, below 10 s); then the
// connection is closed. Before, the answer was written without a deadline:
// the server blocked in the write for as long as the client kept its
// connection open, and Close failed after waiting out its whole deadline.
func TestClientThatNeverReadsIsDisconnected(t *testing.T) {
	s, base := startSource(t, "read_timeout = \"1s\"\n")
	runEngine(t, s, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096) // fill up soon
	batch := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 256)
	go func() {
		// Requests until the server stops the connection. Never reads.
		// (The client may not learn that it was stopped: the reset can
		// be lost against its closed window; the server's side is what
		// matters.)
		for {
			if _, err := conn.Write(batch); err != nil {
				return
			}
		}
	}()
	testkit.WaitFor(t, "the server to serve the connection", func() bool { return serverConns() > 0 })
	testkit.WaitForWithin(t, 15*time.Second, "the server to give up the connection of a client that does not read its answers", func() bool {
		return serverConns() == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// serverConns counts the connections net/http's servers serve in this
// process (their goroutines).
func serverConns() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "net/http.(*conn).serve(")
}

// TestSlowSenderIsDisconnected: a client cut off with 408 (its body came
// too slowly) has its connection closed, whatever it goes on sending. The
// answer went out, but then net/http read what was left of the body (up to
// 256 KiB: a chunked body, or a Content-Length with that little left) with
// no deadline at all: a trickler that kept trickling kept its connection and
// a goroutine for hours, and held Close until its deadline.
func TestSlowSenderIsDisconnected(t *testing.T) {
	for _, c := range []struct {
		name, framing string
		chunk         string
	}{
		{name: "chunked", framing: "Transfer-Encoding: chunked", chunk: "2\r\n1\n\r\n"},
		{name: "content-length", framing: "Content-Length: 100000", chunk: "1\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, base := startSource(t, "read_timeout = \"1s\"\n")
			runEngine(t, s, nil)
			addr := strings.TrimPrefix(base, "http://")
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-ndjson\r\n%s\r\n\r\n", addr, c.framing)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond) // the pace of the attack, not synchronisation
				defer tick.Stop()
				for range tick.C {
					if _, err := conn.Write([]byte(c.chunk)); err != nil {
						return
					}
				}
			}()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408", resp.StatusCode)
			}
			var closed atomic.Bool
			go func() {
				_, _ = io.Copy(io.Discard, br) // until the server closes the connection
				closed.Store(true)
			}()
			testkit.WaitFor(t, "the server to close the connection of the client it answered 408", closed.Load)
		})
	}
}
