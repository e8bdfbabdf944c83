package nats

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// refusingServer starts a nats-server with a password, and returns its URL
// and a function that changes the password (a configuration reload): the
// server then drops the source's connection and refuses its reconnects,
// and the client gives up after the second refusal in a row.
func refusingServer(t *testing.T) (url string, changePassword func()) {
	t.Helper()
	var listen, conf, pidFile string
	write := func(password string) {
		data := fmt.Sprintf("listen: %s\npid_file: %q\njetstream { store_dir: %q }\nauthorization { user: \"u\", password: %q }\n",
			listen, pidFile, filepath.Join(filepath.Dir(conf), "js"), password)
		if err := os.WriteFile(conf, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := natstest.StartServer(t, func(addr, dir string) string {
		listen, conf, pidFile = addr, filepath.Join(dir, "nats.conf"), filepath.Join(dir, "nats.pid")
		return fmt.Sprintf("listen: %s\npid_file: %q\njetstream { store_dir: %q }\nauthorization { user: \"u\", password: \"one\" }\n",
			addr, pidFile, filepath.Join(dir, "js"))
	})
	return "nats://" + addr, func() {
		write("two")
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

func refusedSource(t *testing.T) (*Source, func()) {
	t.Helper()
	url, changePassword := refusingServer(t)
	fx := &fixture{stream: "REFUSED", subject: "refused", durable: "d"}
	s := open(t, fx.build(t, url, "user = \"u\"\npassword = \"one\"\ncreate = true\nsubjects = [\"refused.>\"]\nreconnect_wait = \"100ms\"\n"))
	return s, changePassword
}

// readRefused reads until Read returns an error other than the retryable
// one a paused source may have returned, within a deadline.
func readRefused(t *testing.T, s *Source) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Read(ctx)
	return err
}

// TestCredentialsRefusedOnReconnectStopTheTask: the client gives up on a
// server that refuses its credentials twice in a row, and closes the
// connection. Pulling then never resumes; Read must stop the task with the
// reason rather than wait forever (the task looked healthy and read
// nothing).
func TestCredentialsRefusedOnReconnectStopTheTask(t *testing.T) {
	s, changePassword := refusedSource(t)
	changePassword()
	err := readRefused(t, s)
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Read after the server refused the credentials: %v (%v), want a task-permanent error naming the credentials", err, component.ClassOf(err))
	}
}

// TestResumeOnAClosedConnectionStopsTheTask: a Resume whose pull cannot
// start (the client closed the connection while the task was paused)
// stopped nothing: Read returned the same retryable error forever, the
// engine retried it forever, and the task never read again.
func TestResumeOnAClosedConnectionStopsTheTask(t *testing.T) {
	s, changePassword := refusedSource(t)
	s.Pause()
	changePassword()
	testkit.WaitFor(t, "the client to give up", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.nc.IsClosed()
	})
	s.Resume()
	err := readRefused(t, s)
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Read after Resume on a closed connection: %v (%v), want a task-permanent error naming the credentials", err, component.ClassOf(err))
	}
}
