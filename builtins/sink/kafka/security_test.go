package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestSASL writes through each mechanism, and a wrong password stops the
// task at Open without the password showing anywhere.
func TestSASL(t *testing.T) {
	users := []kafkadev.User{
		{Mechanism: "PLAIN", Name: "plain-user", Password: "plain-pass"},
		{Mechanism: "SCRAM-SHA-256", Name: "scram256", Password: "s256-pass"},
		{Mechanism: "SCRAM-SHA-512", Name: "scram512", Password: "s512-pass"},
	}
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"s"}, Users: users})
	for i, u := range users {
		t.Run(u.Mechanism, func(t *testing.T) {
			s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "s",
				"sasl": map[string]any{"mechanism": u.Mechanism, "username": u.Name, "password": u.Password}})
			if err := write(t, s, msg(`{}`, u.Mechanism)); err != nil {
				t.Fatal(err)
			}
			admin := scram.Auth{User: "scram512", Pass: "s512-pass"}.AsSha512Mechanism()
			recs := consumeWith(t, []kgo.Opt{kgo.SeedBrokers(c.Addr()), kgo.SASL(admin)}, i+1, "s")
			if string(recs[i].Value) != u.Mechanism {
				t.Fatalf("record %q", recs[i].Value)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		// kfake drops the connection on bad credentials; a Kafka broker
		// answers SASL_AUTHENTICATION_FAILED, as this control does.
		c.Kfake().ControlKey(kmsg.SASLAuthenticate.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.Kfake().KeepControl()
			resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
			resp.ErrorMessage = &msg
			return resp, nil, true
		})
		env := testEnv(t)
		var logs strings.Builder
		env.Logger = env.Logger.Output(&logs).Level(-1)
		s := buildSink(t, env, map[string]any{"brokers": []any{c.Addr()}, "topic": "s",
			"sasl": map[string]any{"mechanism": "SCRAM-SHA-256", "username": "scram256", "password": "not-the-password"}})
		ctx, cancel := context.WithTimeout(context.Background(), progressBound)
		defer cancel()
		err := s.Open(ctx)
		if component.ClassOf(err) != component.ClassTaskPermanent {
			t.Fatalf("wrong password: %v (%v), want task-permanent", err, component.ClassOf(err))
		}
		if strings.Contains(err.Error()+logs.String(), "not-the-password") {
			t.Fatal("the password leaked into an error or a log line")
		}
	})
}

// TestTLS: server verification with ca_file, mutual TLS, the test-only
// skip switch, and an unknown CA stopping the task.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlstest.Generate(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"tls"}, TLS: files.Server})
	clientTLS := map[string]any{"ca_file": files.CA, "cert_file": files.ClientCert, "key_file": "client-key.pem"} // relative to the task dir
	env := testEnv(t)
	env.Dir = dir
	s := newSink(t, env, map[string]any{"brokers": []any{c.Addr()}, "topic": "tls", "tls": clientTLS})
	if err := write(t, s, msg(`{}`, "over tls")); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	recs := consumeWith(t, []kgo.Opt{kgo.SeedBrokers(c.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})}, 1, "tls")
	if string(recs[0].Value) != "over tls" {
		t.Fatalf("record %q", recs[0].Value)
	}

	skip := map[string]any{"insecure_skip_verify": true, "cert_file": files.ClientCert, "key_file": files.ClientKey}
	s2 := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "tls", "tls": skip})
	if err := write(t, s2, msg(`{}`, "skip")); err != nil {
		t.Fatal(err)
	}

	other, err := tlstest.Generate(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	s3 := buildSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "tls",
		"tls": map[string]any{"ca_file": filepath.Clean(other.CA), "cert_file": files.ClientCert, "key_file": files.ClientKey}})
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	if err := s3.Open(ctx); component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("unknown CA: %v (%v), want task-permanent", err, component.ClassOf(err))
	}
}
