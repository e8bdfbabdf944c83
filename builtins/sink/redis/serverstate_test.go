package redis

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// fakeRedis is a RESP server that answers +PONG to PING, +OK to the
// connection's setup commands, and reply to every XADD.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Serve(t, ln, func(c net.Conn) { serveRESP(c, reply) })
}

func serveRESP(c net.Conn, reply string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "*") {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		var args []string
		for range n {
			h, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(h, "$") {
				return
			}
			l, _ := strconv.Atoi(strings.TrimSpace(h[1:]))
			b := make([]byte, l+2)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			args = append(args, string(b[:l]))
		}
		if len(args) == 0 {
			return
		}
		switch strings.ToUpper(args[0]) {
		case "PING":
			io.WriteString(c, "+PONG\r\n")
		case "XADD":
			io.WriteString(c, reply+"\r\n")
		default:
			io.WriteString(c, "+OK\r\n")
		}
	}
}

// TestServerStateRefusalsAreRetried: a server that refuses writes for its
// own state (MISCONF: it cannot persist to disk, e.g. a failed BGSAVE on a
// full disk; LOADING; OOM; ...) must have the records retried, not sent to
// the dead-letter queue as if Redis had refused their data. WRONGTYPE, a
// refusal of the record, still fails it alone as event-permanent.
func TestServerStateRefusalsAreRetried(t *testing.T) {
	for reply, want := range map[string]component.Class{
		"-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.": component.ClassRetryable,
		"-LOADING Redis is loading the dataset in memory":                                         component.ClassRetryable,
		"-OOM command not allowed when used memory > 'maxmemory'.":                                component.ClassRetryable,
		"-READONLY You can't write against a read only replica.":                                  component.ClassRetryable,
		"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.": component.ClassRetryable,
		"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.":       component.ClassRetryable,
		"-NOREPLICAS Not enough good replicas to write.":                                          component.ClassRetryable,
		"-CLUSTERDOWN The cluster is down":                                                        component.ClassRetryable,
		"-TRYAGAIN Multiple keys request during rehashing of slot":                                component.ClassRetryable,
		"-WRONGTYPE Operation against a key holding the wrong kind of value":                      component.ClassEventPermanent,
	} {
		code, _, _ := strings.Cut(reply[1:], " ")
		t.Run(code, func(t *testing.T) {
			addr := fakeRedis(t, reply)
			s := buildSink(t, fmt.Sprintf("url = \"redis://%s/0\"\nstream = \"s\"\n", addr))
			ctx := redistest.Ctx(t)
			if err := s.Open(ctx); err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			err := s.Write(ctx, []message.Message{record("1", `{"n":1}`), record("2", `{"n":2}`)})
			re, ok := err.(*component.RecordErrors)
			if !ok || len(re.Errs) != 2 {
				t.Fatalf("Write: %v, want both records failed", err)
			}
			for i, e := range re.Errs {
				if c := component.ClassOf(e); c != want {
					t.Errorf("record %d: class %s, want %s: %v", i, c, want, e)
				}
			}
		})
	}
}
