package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestReceivedNotLostOnReconnect: messages the source has already received
// (waiting in its queue for Read) that the broker will not send again after
// a lost connection (QoS 0 ones, and every message of a clean session) are
// handed out, not thrown away when the source notices the connection is
// gone, as they were. Sensors usually publish at QoS 0; a subscription at
// qos = 1 then receives them at QoS 0.
func TestReceivedNotLostOnReconnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    string
		pubQoS byte
	}{
		{"qos0-subscription", "qos = 0\nclean_session = true\n", 0},
		{"qos1-persistent-session-qos0-publisher", "qos = 1\n", 0},
		{"qos1-clean-session", "qos = 1\nclean_session = true\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := testkit.MQTT(t)
			topic := testkit.Unique(t, "rq0")
			id := testkit.Unique(t, "cid")
			t.Cleanup(func() { cleanSession(t, url, id) })
			proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
			s := newSource(t, fmt.Sprintf("url = \"tcp://%s\"\ntopics = [%q]\nclient_id = %q\nkeep_alive = \"1s\"\n%s", proxy.Addr(), topic, id, tc.cfg))
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
			// The broker restarts (the connection drops) before the task read them.
			proxy.Cut()
			testkit.WaitFor(t, "the source to notice the lost connection", ss.isDead)
			proxy.Restore()
			msgs := readN(t, s, n, true) // fails (deadline) when the received messages were dropped
			for i, m := range msgs {
				if got, want := string(payload(t, m)), fmt.Sprintf(`{"n":%d}`, i); got != want {
					t.Fatalf("message %d is %s, want %s", i, got, want)
				}
			}
		})
	}
}
