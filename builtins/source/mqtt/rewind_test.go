package mqtt

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRewindKeepsWhatTheBrokerDoesNotResend: the engine rewinds the source
// when a blocked task is resumed. Messages the source had received and not
// handed out yet that the broker will not send again (QoS 0 ones, as
// sensors usually publish, and every message of a clean session) are
// handed out after the rewind, as after a lost connection; they were
// thrown away with the session, uncounted. QoS 1 messages of a persistent
// session come again from the broker, once.
func TestRewindKeepsWhatTheBrokerDoesNotResend(t *testing.T) {
	// And a persistent session's QoS 1 messages, which the broker resends.
	for _, tc := range append(notResent, sessionCase{"qos1-persistent-session", "qos = 1\n", 1}) {
		t.Run(tc.name, func(t *testing.T) {
			url := testkit.MQTT(t)
			topic := testkit.Unique(t, "rw")
			id := testkit.Unique(t, "cid")
			t.Cleanup(func() { cleanSession(t, url, id) })
			s := newSource(t, fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n%s", url, topic, id, tc.cfg))
			openT(t, s)
			pub := mqtttest.Connect(t, url)
			const n = 5
			for i := range n {
				pub.Publish(t, topic, tc.pubQoS, fmt.Appendf(nil, `{"n":%d}`, i))
			}
			ss, err := s.current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, "every message received by the source", func() bool {
				ss.mu.Lock()
				defer ss.mu.Unlock()
				return len(ss.queue) == n
			})
			if err := s.Rewind(context.Background()); err != nil {
				t.Fatal(err)
			}
			readInOrder(t, s, n)
			// The next Read opens the next session, which receives what
			// is published once it is there.
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
			defer cancel()
			type result struct {
				b   component.Batch
				err error
			}
			next := make(chan result, 1)
			go func() {
				b, err := s.Read(ctx)
				next <- result{b, err}
			}()
			testkit.WaitFor(t, "the next session", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.sess != nil && s.sess != ss && !s.sess.isDead()
			})
			pub.Publish(t, topic, tc.pubQoS, []byte(`{"n":5}`))
			r := <-next
			if r.err != nil || len(r.b.Messages) != 1 || string(payload(t, r.b.Messages[0])) != `{"n":5}` {
				t.Fatalf("after the rewind: %v %v", r.b.Messages, r.err)
			}
			s.mu.Lock()
			backoff := s.backoff
			s.mu.Unlock()
			if backoff != 0 {
				t.Fatalf("a rewind is not a lost connection: the next connect waits %s", backoff)
			}
		})
	}
}
