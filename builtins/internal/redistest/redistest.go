// Package redistest helps tests of the redis connectors talk to the local
// Redis: a client on the test database, per-test keys deleted at the end of
// the test, reading a stream back, and a throwaway password-protected
// server. Only test binaries import it.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Server is a Redis server tests talk to.
type Server struct {
	URL  string // redis://host:port/db
	Addr string
	DB   int
	C    *redis.Client
}

// Local returns the local Redis (testkit.Redis skips or fails the test when
// it is down), connected.
func Local(t testing.TB) *Server {
	t.Helper()
	u := testkit.Redis(t)
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return &Server{URL: u, Addr: o.Addr, DB: o.DB, C: c}
}

// Ctx returns a context that ends with the test's default wait.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	t.Cleanup(cancel)
	return ctx
}

// Key returns a unique key name for the test, deleted (with every key
// starting with it) at the end of the test.
func (s *Server) Key(t testing.TB, prefix string) string {
	k := "sluice-test:" + testkit.Unique(t, prefix)
	t.Cleanup(func() { s.DeletePrefix(k) })
	return k
}

// DeletePrefix deletes every key starting with prefix.
func (s *Server) DeletePrefix(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := s.C.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			s.C.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		s.C.Del(ctx, keys...)
	}
}

// Add appends entries with one field, name = body, to stream.
func (s *Server) Add(t testing.TB, stream, field string, bodies [][]byte) {
	t.Helper()
	ctx := Ctx(t)
	p := s.C.Pipeline()
	for _, b := range bodies {
		p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{field, b}})
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("XADD %s: %v", stream, err)
	}
}

// Entries returns the entries of stream, in order.
func (s *Server) Entries(t testing.TB, stream string) []redis.XMessage {
	t.Helper()
	msgs, err := s.C.XRange(Ctx(t), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	return msgs
}

// Pending returns how many entries the group holds unacknowledged.
func (s *Server) Pending(t testing.TB, stream, group string) int64 {
	t.Helper()
	p, err := s.C.XPending(Ctx(t), stream, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", stream, group, err)
	}
	return p.Count
}

// AuthServer starts a throwaway redis-server with requirepass on a free
// port, stopped at the end of the test. It skips the test when
// redis-server is not installed (fails with SLUICE_INTEGRATION=1).
func AuthServer(t testing.TB, password string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testkit.Integration() {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--requirepass", password,
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	testkit.WaitFor(t, "the throwaway redis-server to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password})
	t.Cleanup(func() { c.Close() })
	return &Server{URL: fmt.Sprintf("redis://%s/0", addr), Addr: addr, C: c}
}

// URLVia returns u with its host replaced by addr (a proxy's).
func URLVia(u, addr string) string {
	i := strings.Index(u, "://")
	rest := u[i+3:]
	host, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(host, "@"); at >= 0 {
		return u[:i+3] + host[:at+1] + addr + "/" + path
	}
	return u[:i+3] + addr + "/" + path
}
