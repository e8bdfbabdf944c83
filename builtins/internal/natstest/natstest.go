// Package natstest helps tests of the nats connectors talk to the local
// NATS server with JetStream: connect, create per-test streams that are
// deleted at the end of the test, publish, read a stream back, and start a
// throwaway server with authentication. Only test binaries import it.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Server is a NATS server tests talk to.
type Server struct {
	URL  string
	Addr string // host:port
	NC   *nats.Conn
	JS   jetstream.JetStream
}

// Local returns the local NATS server (testkit.NATS skips or fails the test
// when it is down), connected, with KeepStream in its account.
func Local(t testing.TB) *Server {
	t.Helper()
	u := testkit.NATS(t)
	nc, err := nats.Connect(u, nats.Name("sluice-test"))
	if err != nil {
		t.Fatalf("connect to %s: %v", u, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(u, "nats://")
	s := &Server{URL: u, Addr: addr, NC: nc, JS: js}
	s.keep(t)
	return s
}

// KeepStream is a stream Local leaves on the server for good (empty: its
// only subject is its name, which no test uses), so that the account's
// store directory is never empty. nats-server 2.9 removes an account's
// streams directory, then the account's directory, when it deletes the
// account's last file stream, and a stream another connection creates at
// that moment fails: "error creating store for stream" (err_code 10049),
// the server logging "mkdir .../$G/streams: no such file or directory".
// The tests of several packages (and several runs) share the server, so one
// test's cleanup deleting the last stream failed another test's setup.
const KeepStream = "SLUICE_TEST_KEEP"

// errStreamStoreFailed is the server's JSStreamStoreFailedF, which nats.go
// has no name for.
const errStreamStoreFailed jetstream.ErrorCode = 10049

// keep creates KeepStream unless it exists (creating it again with the same
// configuration is a no-op).
func (s *Server) keep(t testing.TB) {
	t.Helper()
	ctx := Ctx(t)
	for {
		_, err := s.JS.CreateStream(ctx, jetstream.StreamConfig{Name: KeepStream, Storage: jetstream.FileStorage, MaxMsgs: 1})
		var api *jetstream.APIError
		if errors.As(err, &api) && api.ErrorCode == errStreamStoreFailed && ctx.Err() == nil {
			// Until it exists, creating it meets the very race it prevents.
			continue
		}
		if err != nil {
			t.Fatalf("create the stream %s that keeps the server's store directory: %v", KeepStream, err)
		}
		return
	}
}

// Ctx returns a context that ends with the test's default wait.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	t.Cleanup(cancel)
	return ctx
}

// Stream creates a stream over subjects, deleted at the end of the test.
func (s *Server) Stream(t testing.TB, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	st, err := s.JS.CreateStream(Ctx(t), jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	s.DeleteAtEnd(t, name)
	return st
}

// DeleteAtEnd deletes the stream name (with its consumers) at the end of
// the test, whoever created it.
func (s *Server) DeleteAtEnd(t testing.TB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.JS.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("delete stream %s: %v", name, err)
		}
	})
}

// Publish publishes bodies to subject through JetStream, waiting for
// every acknowledgement (in chunks that stay within the client's window of
// outstanding publishes).
func (s *Server) Publish(t testing.TB, subject string, bodies [][]byte) {
	t.Helper()
	for len(bodies) > 1000 {
		s.Publish(t, subject, bodies[:1000])
		bodies = bodies[1000:]
	}
	futs := make([]jetstream.PubAckFuture, 0, len(bodies))
	for _, b := range bodies {
		f, err := s.JS.PublishAsync(subject, b)
		if err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish to %s: %v", subject, err)
		case <-time.After(testkit.Scale(testkit.DefaultWait)):
			t.Fatalf("publish to %s: no acknowledgement", subject)
		}
	}
}

// Msg is a message read back from a stream.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	Seq     uint64
}

// ReadAll returns every message the stream holds, in sequence order.
func (s *Server) ReadAll(t testing.TB, stream string) []Msg {
	t.Helper()
	ctx := Ctx(t)
	st, err := s.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Msg
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for uint64(len(out)) < info.State.Msgs {
		b, err := c.Fetch(int(min(info.State.Msgs-uint64(len(out)), 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range b.Messages() {
			md, _ := m.Metadata()
			out = append(out, Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), Seq: md.Sequence.Stream})
			n++
			if md.Sequence.Stream >= info.State.LastSeq {
				return out
			}
		}
		if err := b.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	return out
}

// StreamMsgs returns how many messages the stream holds.
func (s *Server) StreamMsgs(t testing.TB, stream string) uint64 {
	t.Helper()
	st, err := s.JS.Stream(Ctx(t), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// AckPending returns the durable's messages delivered and not acknowledged,
// and those not delivered yet.
func (s *Server) AckPending(t testing.TB, stream, durable string) (ackPending int, pending uint64) {
	t.Helper()
	c, err := s.JS.Consumer(Ctx(t), stream, durable)
	if err != nil {
		t.Fatalf("durable %s: %v", durable, err)
	}
	info, err := c.Info(Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending, info.NumPending
}

// StreamName returns a unique JetStream stream name for the test (letters,
// digits and '_' only).
func StreamName(t testing.TB, prefix string) string {
	return strings.ToUpper(testkit.Unique(t, prefix))
}

// AuthServer starts a throwaway nats-server with JetStream and
// user/password authentication on a free port, stopped at the end of the
// test. It skips the test when nats-server is not installed (fails with
// SLUICE_INTEGRATION=1).
func AuthServer(t testing.TB, user, password string) *Server {
	t.Helper()
	addr := StartServer(t, func(addr, dir string) string {
		return fmt.Sprintf("listen: %s\njetstream { store_dir: %q }\nauthorization { user: %q, password: %q }\n", addr, filepath.Join(dir, "js"), user, password)
	})
	u := fmt.Sprintf("nats://%s:%s@%s", user, password, addr)
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{URL: "nats://" + addr, Addr: addr, NC: nc, JS: js}
}

// StartServer runs a throwaway nats-server on a free port until the end of
// the test, with the configuration config returns for its address and a
// folder of its own, and returns the address once it accepts connections.
// It skips the test when nats-server is not installed (fails with
// SLUICE_INTEGRATION=1).
func StartServer(t testing.TB, config func(addr, dir string) string) string {
	t.Helper()
	addr, dir := testkit.FreeAddr(t), t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(config(addr, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.RunServer(t, "nats-server", addr, "-c", conf)
	return addr
}

// PasswordServer starts a throwaway nats-server with JetStream that takes
// user "u" with password "one", and returns its URL and a function that
// changes the password (a configuration reload): the server then drops the
// clients that logged in with the old one and refuses their reconnects,
// and nats.go gives up (closes the connection) after the second refusal
// in a row.
func PasswordServer(t testing.TB) (url string, changePassword func()) {
	t.Helper()
	var listen, conf, pidFile string
	write := func(password string) string {
		return fmt.Sprintf("listen: %s\npid_file: %q\njetstream { store_dir: %q }\nauthorization { user: \"u\", password: %q }\n",
			listen, pidFile, filepath.Join(filepath.Dir(conf), "js"), password)
	}
	addr := StartServer(t, func(addr, dir string) string {
		listen, conf, pidFile = addr, filepath.Join(dir, "nats.conf"), filepath.Join(dir, "nats.pid")
		return write("one")
	})
	return "nats://" + addr, func() {
		t.Helper()
		if err := os.WriteFile(conf, []byte(write("two")), 0o600); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
}
