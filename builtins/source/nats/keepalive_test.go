package nats

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
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
// after it arrived, as the docs promise. The clock is synctest's, so the
// ticks come exactly where the test puts them.
func TestHeldMessageReportedWithinTwoThirdsOfAckWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ackWait = 3 * time.Second
		every := ackWait / 3
		env := componenttest.Env(t, zerolog.WarnLevel, "source")
		s := componenttest.Build(t, Register, component.KindSource, "nats", "url = \"nats://127.0.0.1:1\"\nstream = \"S\"\n", env).(*Source)
		s.nc = new(nats.Conn) // Read needs an opened source; nothing is sent
		s.inflight = map[*inflight]struct{}{}
		s.stop, s.stopped = make(chan struct{}), make(chan struct{})
		s.mu.Lock()
		s.startKeepalive(ackWait)
		s.mu.Unlock()
		defer func() {
			close(s.stop)
			<-s.stopped
		}()

		// The message arrives just after the first tick...
		time.Sleep(every)
		synctest.Wait()
		m := newReportedMsg()
		arrived := time.Now()
		s.mu.Lock()
		s.queue = append(s.queue, held{msg: m})
		s.mu.Unlock()
		// ...is first seen (stamped) by the second...
		time.Sleep(every)
		synctest.Wait()
		// ...and read by the engine just before the third.
		time.Sleep(every - time.Millisecond)
		b, err := s.Read(t.Context())
		if err != nil || len(b.Messages) != 1 {
			t.Fatalf("Read: %d messages, %v", len(b.Messages), err)
		}
		defer b.Ack(nil)
		time.Sleep(2 * every)
		synctest.Wait()
		select {
		case at := <-m.reports:
			if waited := at.Sub(arrived); waited > ackWait*2/3 {
				t.Fatalf("first reported in progress %s after it arrived, with ack_wait %s: the server may have delivered it again", waited, ackWait)
			}
		default:
			t.Fatalf("not reported in progress %s after it arrived, with ack_wait %s: the server may have delivered it again", time.Since(arrived), ackWait)
		}
	})
}
