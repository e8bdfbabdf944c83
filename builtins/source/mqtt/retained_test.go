package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRetainedSentAgainOnRestart pins what docs/connectors/mqtt.md says of
// a stop and a start: the start subscribes again (topics may have
// changed), so the broker sends the topics' retained messages again, even
// though the persistent session had them acknowledged, flagged retained.
func TestRetainedSentAgainOnRestart(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "ret")
	id := testkit.Unique(t, "cid")
	t.Cleanup(func() { cleanSession(t, url, id) })
	pub := mqtttest.Connect(t, url)
	retain := func(body []byte) {
		if tok := pub.C.Publish(topic, 1, true, body); !tok.WaitTimeout(testkit.Scale(testkit.DefaultWait)) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	retain([]byte(`{"r":1}`))
	t.Cleanup(func() { retain(nil) }) // an empty retained message removes it
	cfg := fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n", url, topic, id)
	check := func(run string, s *Source) {
		m := readN(t, s, 1, true)[0]
		var ev struct{ Data struct{ Retained bool } }
		if err := json.Unmarshal(m.Payload, &ev); err != nil || !ev.Data.Retained || string(payload(t, m)) != `{"r":1}` {
			t.Fatalf("%s: %s (%v)", run, m.Payload, err)
		}
	}
	s := newSource(t, cfg)
	openT(t, s)
	check("first start", s)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := newSource(t, cfg)
	openT(t, s2)
	check("second start, same session", s2)
}
