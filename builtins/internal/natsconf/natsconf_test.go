package natsconf

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestUntrustedCertificate: a nats-server whose certificate the client does
// not trust stops the task at start with what to change, rather than being
// retried.
func TestUntrustedCertificate(t *testing.T) {
	dir := t.TempDir()
	files, err := tlstest.Generate(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	addr := natstest.StartServer(t, func(addr, _ string) string {
		return fmt.Sprintf("listen: %s\ntls { cert_file: %q, key_file: %q }\n", addr, files.ServerCert, files.ServerKey)
	})
	c := DefaultConn()
	c.URL = "tls://" + addr
	opts, err := c.Options("test", dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Connect(context.Background(), &c, opts, false)
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "set tls.ca_file") {
		t.Fatalf("Connect: %v (class %s), want task-permanent naming tls.ca_file", err, component.ClassOf(err))
	}
}

// TestClassifyServerErrors: what a server says decides whether a retry can
// help. A stream store the server failed to create (nats-server 2.9 can
// answer this while another client deletes an account's last stream, err
// 10049) is a server fault of the moment: retried, not a stop.
func TestClassifyServerErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want component.Class
	}{
		{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream: stat /data/jetstream/$G/streams: no such file or directory"}, component.ClassRetryable},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, component.ClassRetryable},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, component.ClassTaskPermanent},
		{&jetstream.APIError{Code: 403, Description: "forbidden"}, component.ClassTaskPermanent},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum, Description: "message size exceeds maximum allowed"}, component.ClassEventPermanent},
		{fmt.Errorf("stream %q: %w", "s", nats.ErrTimeout), component.ClassRetryable},
		{nats.ErrAuthorization, component.ClassTaskPermanent},
	} {
		if got := component.ClassOf(Classify(c.err)); got != c.want {
			t.Errorf("Classify(%v) is %v, want %v", c.err, got, c.want)
		}
	}
}
