package mqtt

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
)

// sessionCase is a subscription (cfg) and the QoS messages are published
// with.
type sessionCase struct {
	name   string
	cfg    string
	pubQoS byte
}

// notResent are the cases whose messages the broker does not send again
// once the source received them: QoS 0 ones, and every message of a clean
// session.
var notResent = []sessionCase{
	{"qos0-subscription", "qos = 0\nclean_session = true\n", 0},
	{"qos1-persistent-session-qos0-publisher", "qos = 1\n", 0},
	{"qos1-clean-session", "qos = 1\nclean_session = true\n", 1},
}

// TestReceivedNotLostOnReconnect: messages the source has already received
// (waiting in its queue for Read) that the broker will not send again after
// a lost connection (QoS 0 ones, and every message of a clean session) are
// handed out, not thrown away when the source notices the connection is
// gone, as they were. Sensors usually publish at QoS 0; a subscription at
// qos = 1 then receives them at QoS 0.
func TestReceivedNotLostOnReconnect(t *testing.T) {
	for _, tc := range notResent {
		t.Run(tc.name, func(t *testing.T) {
			s, url, topic, proxy := proxiedSource(t, "rq0", tc.cfg)
			pub := mqtttest.Connect(t, url)
			const n = 5
			// The broker restarts (the connection drops) before the task read them.
			receivedThenCut(t, s, proxy, pub, topic, tc.pubQoS, n)
			proxy.Restore()
			readInOrder(t, s, n)
		})
	}
}
