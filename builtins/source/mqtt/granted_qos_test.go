package mqtt

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestLowerGrantedQoSIsWarned: a broker that grants a subscription a lower
// QoS than the task asks for (Mosquitto's max_qos) turns at-least-once into
// at-most-once for its messages; the source says so at subscribe, naming
// the topic and both levels, rather than carrying on silently.
func TestLowerGrantedQoSIsWarned(t *testing.T) {
	testkit.MQTT(t) // skips, or fails under SLUICE_INTEGRATION=1, without Mosquitto
	url := mqtttest.Mosquitto(t, "allow_anonymous true", "max_qos 0")
	topic := testkit.Unique(t, "granted")
	var logs testkit.LogBuffer
	env := componenttest.Env(t, zerolog.InfoLevel, "source")
	env.Logger = zerolog.New(&logs)
	s := componenttest.Build(t, Register, component.KindSource, "mqtt", fmt.Sprintf("url = %q\ntopics = [%q]\nqos = 1\n", url, topic), env).(*Source)
	openT(t, s)
	out := logs.String()
	if !strings.Contains(out, "granted a lower QoS") || !strings.Contains(out, `"granted_qos":0`) || !strings.Contains(out, topic) {
		t.Fatalf("no warning of the QoS 0 granted for QoS 1; log:\n%s", out)
	}
}
