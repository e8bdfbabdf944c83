package nats

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func refusedSource(t *testing.T) (*Source, func()) {
	t.Helper()
	url, changePassword := natstest.PasswordServer(t)
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
