package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestReceivedKeptWhenTheBrokerLostTheSession: QoS 1 messages the source
// had received and not handed to the task yet when the connection dropped
// are left for the broker to send again, but a broker that lost the session
// meanwhile (restarted without persistence, Mosquitto's default) sends
// nothing again: the source hands them out itself when the next connect
// says the session is gone. They were lost, up to the broker's in-flight
// window (20 on Mosquitto) at every restart of the broker while the sink
// was slow.
func TestReceivedKeptWhenTheBrokerLostTheSession(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "lost")
	id := testkit.Unique(t, "cid")
	t.Cleanup(func() { cleanSession(t, url, id) })
	proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
	s := newSource(t, fmt.Sprintf("url = \"tcp://%s\"\ntopics = [%q]\nclient_id = %q\nkeep_alive = \"1s\"\n", proxy.Addr(), topic, id))
	openT(t, s)
	pub := mqtttest.Connect(t, url)
	const n = 5
	for i := range n {
		pub.Publish(t, topic, 1, fmt.Appendf(nil, `{"n":%d}`, i))
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
	// The broker goes down before the task read them, and comes back
	// without the session: a clean-session connect under the same id
	// discards it, as a restart without persistence does.
	proxy.Cut()
	testkit.WaitFor(t, "the source to notice the lost connection", ss.isDead)
	wipe := mqtttest.ConnectID(t, url, id, true)
	wipe.C.Disconnect(100)
	proxy.Restore()
	msgs := readN(t, s, n, true) // fails (deadline) when the received messages were dropped
	for i, m := range msgs {
		if got, want := string(payload(t, m)), fmt.Sprintf(`{"n":%d}`, i); got != want {
			t.Fatalf("message %d is %s, want %s", i, got, want)
		}
	}
	// Published after the reconnect: the subscription was made again.
	pub.Publish(t, topic, 1, []byte(`{"n":5}`))
	if m := readN(t, s, 1, true); string(payload(t, m[0])) != `{"n":5}` {
		t.Fatalf("after the reconnect: %s", m[0].Payload)
	}
}
