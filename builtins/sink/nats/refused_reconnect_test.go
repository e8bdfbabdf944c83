package nats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestCredentialsRefusedOnReconnectStopTheTask: the client gives up on a
// server that refuses its credentials twice in a row, and closes the
// connection for good. Every publish then failed as retryable ("connection
// closed"), so each event went through the retry policy to the dead-letter
// queue, or was dropped without one, until the process restarted, even
// once the server took the credentials again. A refused login stops the
// task, as it does at start, keeping its position.
func TestCredentialsRefusedOnReconnectStopTheTask(t *testing.T) {
	for _, mode := range []string{ModeJetStream, ModeCore} {
		t.Run(mode, func(t *testing.T) {
			url, changePassword := natstest.PasswordServer(t)
			conf := fmt.Sprintf("url = %q\nuser = \"u\"\npassword = \"one\"\nmode = %q\nsubject = \"refused\"\nreconnect_wait = \"100ms\"\n", url, mode)
			if mode == ModeJetStream {
				conf += "stream = \"REFUSED\"\ncreate = true\n"
			}
			s := openSink(t, conf)
			msgs := []message.Message{record("e1", "eu", `{"n":1}`)}
			if err := s.Write(natstest.Ctx(t), msgs); err != nil {
				t.Fatalf("Write before the password changed: %v", err)
			}
			changePassword()
			testkit.WaitFor(t, "the client to give up", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.nc.IsClosed()
			})
			err := s.Write(natstest.Ctx(t), msgs)
			if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "credentials") {
				t.Fatalf("Write after the server refused the credentials: %v (%v), want a task-permanent error naming the credentials", err, component.ClassOf(err))
			}
		})
	}
}
