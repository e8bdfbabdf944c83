// Package redistest helps tests of the redis connectors talk to the local
// Redis: a client on the test database, per-test keys deleted at the end of
// the test, reading a stream back, and a throwaway password-protected
// server. Only test binaries import it.
package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// Server is a Redis server tests talk to.
type Server struct {
	URL  string // redis://host:port/db
	Addr string
	DB   int
	pool *redis.Pool
}

func newServer(t testing.TB, u, password string, opts ...redis.DialOption) *Server {
	t.Helper()
	target, err := redisconf.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: u, Addr: target.Addr, DB: target.DB}
	opts = append(opts, redis.DialDatabase(target.DB), redis.DialPassword(password),
		redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(30*time.Second), redis.DialWriteTimeout(30*time.Second))
	s.pool = &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", target.Addr, opts...)
	}}
	t.Cleanup(func() { s.pool.Close() })
	return s
}

// Local returns the local Redis (testkit.Redis skips or fails the test when
// it is down).
func Local(t testing.TB) *Server {
	t.Helper()
	return newServer(t, testkit.Redis(t), "")
}

// Ctx returns a context that ends with the test's default wait.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	t.Cleanup(cancel)
	return ctx
}

// Do runs a command on a connection of the pool (safe from any goroutine).
func (s *Server) Do(cmd string, args ...any) (any, error) {
	c := s.pool.Get()
	defer c.Close()
	return c.Do(cmd, args...)
}

// Conn returns a connection of the pool, to close after use (a
// benchmark's floor uses it as a plain program would).
func (s *Server) Conn() redis.Conn { return s.pool.Get() }

// Must runs a command and fails the test when it fails.
func (s *Server) Must(t testing.TB, cmd string, args ...any) any {
	t.Helper()
	v, err := s.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return v
}

// Int runs a command whose reply is an integer.
func (s *Server) Int(t testing.TB, cmd string, args ...any) int64 {
	t.Helper()
	n, err := redis.Int64(s.Must(t, cmd, args...), nil)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return n
}

// String runs a command whose reply is a string ("" for nil).
func (s *Server) String(t testing.TB, cmd string, args ...any) string {
	t.Helper()
	v := s.Must(t, cmd, args...)
	if v == nil {
		return ""
	}
	str, err := redis.String(v, nil)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return str
}

// HGetAll returns the hash at key.
func (s *Server) HGetAll(t testing.TB, key string) map[string]string {
	t.Helper()
	h, err := redis.StringMap(s.Must(t, "HGETALL", key), nil)
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return h
}

// Keys returns the keys matching pattern, sorted.
func (s *Server) Keys(t testing.TB, pattern string) []string {
	t.Helper()
	keys, err := redis.Strings(s.Must(t, "KEYS", pattern), nil)
	if err != nil {
		t.Fatalf("KEYS %s: %v", pattern, err)
	}
	sort.Strings(keys)
	return keys
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
	cursor := "0"
	for {
		v, err := redis.Values(s.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil || len(v) != 2 {
			return
		}
		cursor, _ = redis.String(v[0], nil)
		if keys, _ := v[1].([]any); len(keys) > 0 {
			_, _ = s.Do("DEL", keys...)
		}
		if cursor == "0" {
			return
		}
	}
}

// Add appends entries with one field, name = body, to stream.
func (s *Server) Add(t testing.TB, stream, field string, bodies [][]byte) {
	t.Helper()
	if err := s.AddErr(stream, field, bodies); err != nil {
		t.Fatal(err)
	}
}

// AddErr is Add returning its error (for a goroutine other than the
// test's): one pipeline of XADD.
func (s *Server) AddErr(stream, field string, bodies [][]byte) error {
	c := s.pool.Get()
	defer c.Close()
	for _, b := range bodies {
		if err := c.Send("XADD", stream, "*", field, b); err != nil {
			return fmt.Errorf("XADD %s: %w", stream, err)
		}
	}
	if _, err := c.Do(""); err != nil {
		return fmt.Errorf("XADD %s: %w", stream, err)
	}
	return nil
}

// Entry is a stream entry.
type Entry struct {
	ID     string
	Values map[string]string
}

// Entries returns the entries of stream, in order.
func (s *Server) Entries(t testing.TB, stream string) []Entry {
	t.Helper()
	return entries(t, s.Must(t, "XRANGE", stream, "-", "+"))
}

// LastID returns the id of the last entry of stream.
func (s *Server) LastID(t testing.TB, stream string) string {
	t.Helper()
	es := entries(t, s.Must(t, "XREVRANGE", stream, "+", "-", "COUNT", 1))
	if len(es) == 0 {
		t.Fatalf("stream %s is empty", stream)
	}
	return es[0].ID
}

func entries(t testing.TB, reply any) []Entry {
	t.Helper()
	items, err := redis.Values(reply, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Entry, 0, len(items))
	for _, it := range items {
		e, _ := it.([]any)
		if len(e) != 2 {
			t.Fatalf("unexpected stream entry %v", it)
		}
		id, _ := redis.String(e[0], nil)
		kv, err := redis.StringMap(e[1], nil)
		if err != nil {
			t.Fatalf("entry %s: %v", id, err)
		}
		out = append(out, Entry{ID: id, Values: kv})
	}
	return out
}

// Group is what XINFO GROUPS says of a consumer group.
type Group struct {
	Name            string
	Pending, Lag    int64
	LastDeliveredID string
}

// Groups returns the consumer groups of stream.
func (s *Server) Groups(stream string) ([]Group, error) {
	v, err := redis.Values(s.Do("XINFO", "GROUPS", stream))
	if err != nil {
		return nil, err
	}
	var gs []Group
	for _, g := range v {
		kv, _ := g.([]any)
		var gr Group
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := redis.String(kv[i], nil)
			switch k {
			case "name":
				gr.Name, _ = redis.String(kv[i+1], nil)
			case "pending":
				gr.Pending, _ = redis.Int64(kv[i+1], nil)
			case "lag":
				gr.Lag, _ = redis.Int64(kv[i+1], nil)
			case "last-delivered-id":
				gr.LastDeliveredID, _ = redis.String(kv[i+1], nil)
			}
		}
		gs = append(gs, gr)
	}
	return gs, nil
}

// Pending returns how many entries the group holds unacknowledged.
func (s *Server) Pending(t testing.TB, stream, group string) int64 {
	t.Helper()
	v, err := redis.Values(s.Do("XPENDING", stream, group))
	if err != nil || len(v) == 0 {
		t.Fatalf("XPENDING %s %s: %v", stream, group, err)
	}
	n, _ := redis.Int64(v[0], nil)
	return n
}

// AuthServer starts a throwaway redis-server with requirepass on a free
// port, stopped at the end of the test. It skips the test when
// redis-server is not installed (fails with SLUICE_INTEGRATION=1).
func AuthServer(t testing.TB, password string) *Server {
	t.Helper()
	addr := startServer(t, "--port", "{port}", "--requirepass", password)
	return newServer(t, fmt.Sprintf("redis://%s/0", addr), password)
}

// TLSServer starts a throwaway redis-server that accepts only TLS, with a
// certificate of a throwaway CA (files: the CA, a client certificate and
// its key, for a task's tls table). With clientAuth it refuses clients
// without a certificate of that CA. The returned Server's URL is rediss://
// and its own connections use TLS.
func TLSServer(t testing.TB, clientAuth bool) (*Server, *tlstest.Files) {
	t.Helper()
	files, err := tlstest.Generate(t.TempDir(), clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	auth := "no"
	if clientAuth {
		auth = "yes"
	}
	addr := startServer(t, "--port", "0", "--tls-port", "{port}", "--tls-cert-file", files.ServerCert,
		"--tls-key-file", files.ServerKey, "--tls-ca-cert-file", files.CA, "--tls-auth-clients", auth)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(files.CA)
	if err != nil || !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read the CA %s: %v", files.CA, err)
	}
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return newServer(t, fmt.Sprintf("rediss://%s/0", addr), "", redis.DialUseTLS(true), redis.DialTLSConfig(cfg)), files
}

// startServer runs redis-server with args ({port}: a free port), keeping
// nothing on disk, until the end of the test, and returns its address
// once it accepts connections.
func startServer(t testing.TB, args ...string) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	for i, a := range args {
		if a == "{port}" {
			args[i] = port
		}
	}
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	testkit.RunServer(t, "redis-server", addr, args...)
	return addr
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
