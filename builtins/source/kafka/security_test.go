package kafka

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
)

// TestSASLOverMutualTLS consumes from a cluster that wants both a client
// certificate and SCRAM-SHA-512 credentials.
func TestSASLOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlstest.Generate(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"sec"}, TLS: files.Server,
		Users: []kafkadev.User{{Mechanism: "SCRAM-SHA-512", Name: "u", Password: "p@ss"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DialTLSConfig(clientTLS(t, files)),
		kgo.SASL(scram.Auth{User: "u", Pass: "p@ss"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "sec", Value: []byte(`{"secure":true}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tree := baseTree(c, "sec", uniq(t, "g"))
	tree["tls"] = map[string]any{"ca_file": "ca.pem", "cert_file": "client.pem", "key_file": "client-key.pem"}
	tree["sasl"] = map[string]any{"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p@ss"}
	env := testEnv(t)
	env.Dir = dir
	s := newSource(t, env, tree)
	b := readBatches(t, s, 1)
	if got := string(b[0].Messages[0].Payload); !strings.Contains(got, `"value":{"secure":true}`) {
		t.Fatalf("event %s", got)
	}
}

// clientTLS is the producer's TLS config: the pool the server checks client
// certificates against holds the CA that signed the server's certificate.
func clientTLS(t *testing.T, f *tlstest.Files) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Server.Clone()
	return &tls.Config{RootCAs: c.ClientCAs, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
