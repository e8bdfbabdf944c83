package nats

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// reportedMsg is a JetStream message that records when it is reported in
// progress.
type reportedMsg struct {
	jetstream.Msg // only the methods below are used
	reports       chan time.Time
}

func newReportedMsg() *reportedMsg { return &reportedMsg{reports: make(chan time.Time, 16)} }

func (m *reportedMsg) Subject() string      { return "s.x" }
func (m *reportedMsg) Reply() string        { return "$JS.ACK.S.d.1.1.1.1700000000000000000.0" }
func (m *reportedMsg) Data() []byte         { return []byte("1") }
func (m *reportedMsg) Headers() nats.Header { return nil }
func (m *reportedMsg) Ack() error           { return nil }
func (m *reportedMsg) Nak() error           { return nil }
func (m *reportedMsg) InProgress() error {
	select {
	case m.reports <- time.Now():
	default:
	}
	return nil
}

// TestHeldMessageReportedWithinTwoThirdsOfAckWait: a message that waited
// in the source and was then handed to the engine kept no trace of its
// wait: its batch counted as just reported in progress. One read a moment
// before the keepalive's second tick after it arrived was first reported
// a whole ack_wait after it arrived, as the server delivers it again to
// another process. It is now reported at most two thirds of ack_wait
// after it arrived, as the docs promise.
func TestHeldMessageReportedWithinTwoThirdsOfAckWait(t *testing.T) {
	const ackWait = 3 * time.Second
	every := ackWait / 3
	env := componenttest.Env(t, zerolog.WarnLevel, "source")
	s := componenttest.Build(t, Register, component.KindSource, "nats", "url = \"nats://127.0.0.1:1\"\nstream = \"S\"\n", env).(*Source)
	s.nc = new(nats.Conn) // Read needs an opened source; nothing is sent
	s.inflight = map[*inflight]struct{}{}
	s.stop, s.stopped = make(chan struct{}), make(chan struct{})
	s.startKeepalive(ackWait)
	t.Cleanup(func() {
		close(s.stop)
		<-s.stopped
	})
	held := func(m *reportedMsg) {
		s.mu.Lock()
		s.queue = append(s.queue, held{msg: m})
		s.mu.Unlock()
	}

	// A first message shows when the keepalive ticks: the message under
	// test arrives just after a tick.
	first := newReportedMsg()
	held(first)
	<-first.reports
	m := newReportedMsg()
	arrived := time.Now()
	held(m)
	var stamped time.Time
	testkit.WaitFor(t, "the keepalive to see the message", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		stamped = s.queue[len(s.queue)-1].at
		return !stamped.IsZero()
	})
	// The engine reads it just before the next tick.
	testkit.WaitFor(t, "most of a period to pass", func() bool { return time.Since(stamped) >= every*8/10 })
	b, err := s.Read(t.Context())
	if err != nil || len(b.Messages) != 2 {
		t.Fatalf("Read: %d messages, %v", len(b.Messages), err)
	}
	defer b.Ack(nil)
	select {
	case at := <-m.reports:
		if waited := at.Sub(arrived); waited > ackWait*2/3+every/2 {
			t.Fatalf("first reported in progress %s after it arrived, with ack_wait %s: the server may have delivered it again", waited, ackWait)
		}
	case <-time.After(testkit.Scale(2 * ackWait)):
		t.Fatal("never reported in progress")
	}
}
