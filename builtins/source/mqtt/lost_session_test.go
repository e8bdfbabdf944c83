package mqtt

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
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
	s, url, topic, proxy := proxiedSource(t, "lost", "")
	pub := mqtttest.Connect(t, url)
	const n = 5
	receivedThenCut(t, s, proxy, pub, topic, 1, n)
	// The broker goes down before the task read them, and comes back
	// without the session: a clean-session connect under the same id
	// discards it, as a restart without persistence does.
	wipe := mqtttest.ConnectID(t, url, s.conn.ClientID, true)
	wipe.C.Disconnect(100)
	proxy.Restore()
	readInOrder(t, s, n)
	// Published after the reconnect: the subscription was made again.
	pub.Publish(t, topic, 1, []byte(`{"n":5}`))
	if m := readN(t, s, 1, true); string(payload(t, m[0])) != `{"n":5}` {
		t.Fatalf("after the reconnect: %s", m[0].Payload)
	}
}
