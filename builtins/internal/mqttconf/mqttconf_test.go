package mqttconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/sluicehq/sluice/runtime/component"
)

func TestTopicsAndURLs(t *testing.T) {
	for name, bad := range map[string]bool{"a/b": false, "": true, "a/+": true, "a/#": true, "a\x00": true, "\xff": true} {
		if (ValidateTopicName(name) != "") != bad {
			t.Errorf("topic %q: %q", name, ValidateTopicName(name))
		}
	}
	if got := Redact("tcp://u:secret@h:1883"); strings.Contains(got, "secret") || !strings.Contains(got, "u@h:1883") {
		t.Errorf("Redact = %q", got)
	}
	p := component.NewProblems("source")
	ValidateURL(p, "url", "http://h:1883")
	ValidateURL(p, "url", "tcp://h:1883")
	ValidateURL(p, "url", "h:1883")
	if p.Len() != 2 {
		t.Fatalf("%+v", p.List())
	}
}

func TestClassify(t *testing.T) {
	c := Conn{URL: "tcp://h:1883", ClientID: "x"}
	for err, want := range map[error]component.Class{
		packets.ErrorRefusedBadUsernameOrPassword: component.ClassTaskPermanent,
		packets.ErrorRefusedNotAuthorised:         component.ClassTaskPermanent,
		packets.ErrorRefusedIDRejected:            component.ClassTaskPermanent,
		packets.ErrorRefusedServerUnavailable:     component.ClassRetryable,
		errors.New("connection refused"):          component.ClassRetryable,
	} {
		if got := component.ClassOf(c.Classify(err)); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}
