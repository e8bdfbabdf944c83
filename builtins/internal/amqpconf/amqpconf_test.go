package amqpconf

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestRedactAndSource(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://u:secret@h:5672/":        "amqp://u@h:5672/",
		"amqp://u:secret@h/vh":           "amqp://u@h:5672/vh",
		"amqps://h":                      "amqps://guest@h:5671/", // the client logs in as guest
		"not a url u:secret@h":           "not a url u:secret@h",
		"http://u:secret@h/odd-scheme-x": "http://xxxxx@h/odd-scheme-x",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "secret") && !strings.HasPrefix(in, "not") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Source("amqp://u:p@h:5672/", "orders"); got != "amqp://h:5672/%2F/orders" {
		t.Errorf("Source = %q", got)
	}
	if got := Source("amqp://u:p@h/prod", "a b"); got != "amqp://h:5672/prod/a%20b" {
		t.Errorf("Source = %q", got)
	}
}

func TestValidateURL(t *testing.T) {
	p := component.NewProblems("source")
	ValidateURL(p, "url", "ftp://u:secret@h/")
	if p.Len() != 1 || strings.Contains(p.List()[0].Msg, "secret") || !strings.Contains(p.List()[0].Msg, "invalid AMQP URL") {
		t.Fatalf("%+v", p.List())
	}
	p = component.NewProblems("source")
	ValidateURL(p, "url", "amqp://guest:guest@127.0.0.1:5672/")
	if p.Len() != 0 {
		t.Fatalf("%+v", p.List())
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want component.Class
	}{
		{&amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no queue"}, component.ClassTaskPermanent},
		{&amqp.Error{Code: amqp.AccessRefused}, component.ClassTaskPermanent},
		{&amqp.Error{Code: amqp.PreconditionFailed}, component.ClassTaskPermanent},
		{&amqp.Error{Code: amqp.ConnectionForced}, component.ClassRetryable},
		{amqp.ErrClosed, component.ClassRetryable},
		{errors.New("EOF"), component.ClassRetryable},
	} {
		if got := component.ClassOf(Classify(tc.err)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
	c := Conn{URL: "amqp://u:secret@h:5672/"}
	if err := c.classifyDial(amqp.ErrCredentials); component.ClassOf(err) != component.ClassTaskPermanent || strings.Contains(err.Error(), "secret") {
		t.Errorf("%v", err)
	}
	if err := c.classifyDial(errors.New("dial tcp: connection refused")); component.ClassOf(err) != component.ClassRetryable {
		t.Errorf("%v", err)
	}
}

// TestUntrustedCertificate: a broker whose certificate the client does not
// trust stops the task at start with what to change, rather than being
// retried.
func TestUntrustedCertificate(t *testing.T) {
	c := Conn{URL: "amqps://guest:guest@" + tlstest.Listen(t) + "/", DialTimeout: 10 * time.Second, Name: "sluice test"}
	_, err := c.Dial()
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "set tls.ca_file") || strings.Contains(err.Error(), "guest:guest") {
		t.Fatalf("Dial: %v (class %s), want task-permanent naming tls.ca_file", err, component.ClassOf(err))
	}
}
