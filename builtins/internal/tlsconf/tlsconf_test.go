package tlsconf

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
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
)

// writeCert writes a self-signed certificate and its key into dir.
func writeCert(t *testing.T, dir string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

func TestClientAndServer(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	c := &Client{CAFile: "cert.pem", CertFile: "cert.pem", KeyFile: "key.pem", ServerName: "localhost"}
	tc, err := c.Config(dir)
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "localhost" || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("client config %+v %v", tc, err)
	}
	s := &Server{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: "key.pem", ClientCAFile: "cert.pem"}
	sc, err := s.Config(dir)
	if err != nil || sc.ClientAuth != tls.RequireAndVerifyClientCert || sc.ClientCAs == nil {
		t.Fatalf("server config %+v %v", sc, err)
	}
	if _, err := (&Client{CAFile: "key.pem"}).Config(dir); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("a key as CA: %v", err)
	}
	if _, err := (&Server{CertFile: "nope.pem", KeyFile: "key.pem"}).Config(dir); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("missing cert: %v", err)
	}
	p := component.NewProblems("tls")
	(&Client{CertFile: "cert.pem"}).Validate(p)
	if p.Len() != 1 || !strings.Contains(p.List()[0].Msg, "key_file") {
		t.Fatalf("problems %v", p.List())
	}
}

// TestProblem dials real servers: a certificate no root signs, a name the
// certificate does not hold and a server without TLS are problems to fix
// (with what to change); a refused connection is not.
func TestProblem(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	for name, c := range map[string]struct {
		addr string
		cfg  *tls.Config
		want string
	}{
		"unknown CA":  {srv.Listener.Addr().String(), &tls.Config{RootCAs: x509.NewCertPool()}, "set tls.ca_file"},
		"other name":  {srv.Listener.Addr().String(), &tls.Config{RootCAs: trusted, ServerName: "elsewhere.test"}, "set tls.server_name"},
		"no TLS":      {plain.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true}, "does not speak TLS"},
		"refused":     {closedAddr, &tls.Config{RootCAs: trusted}, ""},
		"trusted, ok": {srv.Listener.Addr().String(), &tls.Config{RootCAs: trusted, ServerName: "example.com"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", c.addr, c.cfg)
			if err == nil {
				conn.Close()
			}
			hint, ok := Problem(err)
			if ok != (c.want != "") || !strings.Contains(hint, c.want) {
				t.Fatalf("Problem(%v) = %q, %v; want %q", err, hint, ok, c.want)
			}
		})
	}
}
