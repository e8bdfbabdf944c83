package natsconf

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
