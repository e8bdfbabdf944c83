package mqttconf

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestTopicsAndURLs(t *testing.T) {
	for name, bad := range map[string]bool{"a/b": false, "": true, "a/+": true, "a/#": true, "a\x00": true, "\xff": true,
		"a\tb": true, "a\x7f": true, "a\u0085": true, "a\ufdd0": true, "a\uffff": true, "a\U0010fffe": true, "a\u00a0/\ufffd/é": false} {
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

// TestUntrustedCertificate: a broker whose certificate the client does not
// trust stops the task at start with what to change, rather than being
// retried.
func TestUntrustedCertificate(t *testing.T) {
	c := Conn{URL: "ssl://" + tlstest.Listen(t), ClientID: "sluice-test", KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second}
	o, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(context.Background(), mqtt.NewClient(o))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "set tls.ca_file") {
		t.Fatalf("Connect: %v (class %s), want task-permanent naming tls.ca_file", err, component.ClassOf(err))
	}
}
