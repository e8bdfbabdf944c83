package natsconf

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestUntrustedCertificate: a nats-server whose certificate the client does
// not trust stops the task at start with what to change, rather than being
// retried.
func TestUntrustedCertificate(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, serr := os.Stat(bin); serr != nil {
			if testkit.Integration() {
				t.Fatal("nats-server is not installed")
			}
			t.Skip("nats-server is not installed")
		}
	}
	dir := t.TempDir()
	files, err := tlstest.Generate(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "nats.conf")
	text := fmt.Sprintf("listen: %s\ntls { cert_file: %q, key_file: %q }\n", addr, files.ServerCert, files.ServerKey)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.WaitFor(t, "the throwaway nats-server to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
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
