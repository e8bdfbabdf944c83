package http

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/runtime/component"
)

func TestConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, probs := decodeConfig(t, `address = "127.0.0.1:8080"`)
		if len(probs) != 0 {
			t.Fatalf("problems: %v", probs)
		}
		if cfg.Path != "/" || cfg.Format != "auto" || cfg.MaxBodySize != 10<<20 || cfg.ResponseTimeout.D() != 10*time.Second ||
			cfg.Concurrency != 1 || cfg.Order != "partition" || cfg.MaxRequests != 64 || cfg.MaxEventSize != 0 {
			t.Errorf("defaults: %+v", cfg)
		}
	})
	cases := []struct {
		name, src, path, msg string
	}{
		{"missing address", `path = "/x"`, "source", `missing required key "address"`},
		{"address without port", `address = "localhost"`, "source.address", `did you mean "localhost:8080"?`},
		{"bad port", `address = "127.0.0.1:99999"`, "source.address", "0..65535"},
		{"relative path", "address = \":8080\"\npath = \"events\"", "source.path", `must start with "/"`},
		{"path with query", "address = \":8080\"\npath = \"/e?x=1\"", "source.path", "no query"},
		{"format", "address = \":8080\"\nformat = \"xml\"", "source.format", `must be one of "auto", "json", "cloudevents"`},
		{"concurrency", "address = \":8080\"\nconcurrency = 40", "source.concurrency", "above the maximum 32"},
		{"order", "address = \":8080\"\norder = \"random\"", "source.order", "must be one of"},
		{"timeout", "address = \":8080\"\nresponse_timeout = \"0s\"", "source.response_timeout", "must be positive"},
		{"timeout syntax", "address = \":8080\"\nresponse_timeout = \"10\"", "source.response_timeout", "invalid duration"},
		{"typo", "address = \":8080\"\ntokn = \"x\"", "source.tokn", `did you mean "token"?`},
		{"tls without key", "address = \":8080\"\ntls = { cert_file = \"c.pem\" }", "source.tls", `missing required key "key_file"`},
		{"token with space", "address = \":8080\"\ntoken = \" x\"", "source.token", "whitespace"},
		{"body size", "address = \":8080\"\nmax_body_size = \"lots\"", "source.max_body_size", "invalid size"},
		{"zero body size", "address = \":8080\"\nmax_body_size = \"0\"", "source.max_body_size", "must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := decodeConfig(t, c.src)
			for _, p := range probs {
				if p.PathString() == c.path && strings.Contains(p.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("no problem at %s mentioning %q; got %+v", c.path, c.msg, probs)
		})
	}
	t.Run("example loads", func(t *testing.T) {
		r := component.NewRegistry()
		Register(r)
		spec, _ := r.Lookup(component.KindSource, "http")
		var doc map[string]any
		if _, err := toml.Decode(spec.Example, &doc); err != nil {
			t.Fatal(err)
		}
		t.Setenv("INGEST_TOKEN", "x")
		src := doc["source"].(map[string]any)
		if src["type"] != "http" {
			t.Fatalf("example source type %v", src["type"])
		}
		// ${env:...} is expanded by the loader; a plain value stands in here.
		src["token"] = "x"
		cfg := spec.New()
		p := component.NewProblems("source")
		component.Decode(src, cfg, p, "type")
		if p.Len() != 0 {
			t.Fatalf("example problems: %v", p.List())
		}
		if _, err := spec.Build(cfg, testEnv(t)); err != nil {
			t.Fatalf("example build: %v", err)
		}
	})
}

// writeCert writes a self-signed certificate for 127.0.0.1 into dir.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sluice test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, dir)
	keys := "tls = { cert_file = " + quote(filepath.Join(dir, "cert.pem")) + ", key_file = " + quote(filepath.Join(dir, "key.pem")) + " }"
	s, base := startSource(t, keys)
	e := runEngine(t, s, nil)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %s", base)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(base+"/", "application/json", strings.NewReader(`{"secure":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(e.all()) != 1 {
		t.Fatalf("status %d, %d batches", resp.StatusCode, len(e.all()))
	}
	if _, err := http.Post(base+"/", "application/json", strings.NewReader(`1`)); err == nil {
		t.Error("a client that does not trust the certificate got through")
	}

	t.Run("relative files and missing files", func(t *testing.T) {
		env := testEnv(t)
		env.Dir = dir
		cfg, _ := decodeConfig(t, "address = \"127.0.0.1:0\"\ntls = { cert_file = \"cert.pem\", key_file = \"key.pem\" }")
		if _, err := New(cfg, env); err != nil {
			t.Fatalf("relative paths: %v", err)
		}
		cfg.TLS.CertFile = "missing.pem"
		_, err := New(cfg, env)
		if err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
			t.Fatalf("missing certificate: %v", err)
		}
	})
}

func quote(s string) string { return "'" + s + "'" }
