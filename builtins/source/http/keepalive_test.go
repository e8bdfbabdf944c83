package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestKeepAliveAfterAnUndecodableBody: a gzip body read to its end that
// does not decode is answered 400, and the next request on the same
// keep-alive connection is handled as any other. The read deadline set to
// cut the read of the rest of a body (there was none) also failed net/http's
// background read of the next request, which cancels the connection's
// context: the next request was answered 503 "client went away" at once and
// its events were not kept.
func TestKeepAliveAfterAnUndecodableBody(t *testing.T) {
	s, _ := startSource(t, ``)
	e := runEngine(t, s, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"n\":1}\n"))
	zw.Close()
	bad := gz.Bytes()
	bad[len(bad)-8] ^= 0xff // the CRC: the whole body is read before it fails
	// Whether the background read fails before the handler's end aborts
	// it is a race: try many connections.
	const conns = 100
	for range conns {
		func() {
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			post := func(body []byte, headers string) string {
				t.Helper()
				fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n%sContent-Length: %d\r\n\r\n", headers, len(body))
				conn.Write(body)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Close {
					t.Fatalf("answer %s %s closes the connection", resp.Status, b)
				}
				return resp.Status + " " + string(b)
			}
			if got := post(bad, "Content-Encoding: gzip\r\n"); !strings.HasPrefix(got, "400") {
				t.Fatalf("undecodable body: %q; want 400", got)
			}
			if got := post([]byte("{\"n\":2}\n"), ""); !strings.HasPrefix(got, "200") {
				t.Fatalf("the next request on the connection: %q; want 200", got)
			}
		}()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.events) != conns {
		t.Fatalf("the task got %d batches, want %d: one per second request", len(e.events), conns)
	}
}
