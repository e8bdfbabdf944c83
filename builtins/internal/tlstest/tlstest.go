// Package tlstest makes throwaway TLS material for tests: a CA, a server
// certificate and a client certificate, as PEM files and a server config.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Files are the PEM files Generate wrote, and the server side config
// for a server written in Go (kafkadev.Options.TLS).
type Files struct {
	CA         string // CA certificate: a client's ca_file
	ClientCert string // client certificate signed by the CA: cert_file
	ClientKey  string // its key: key_file
	ServerCert string // the server's certificate, for servers that read files (redis-server)
	ServerKey  string // its key
	Server     *tls.Config
}

// Generate creates a throwaway CA in dir, a server certificate for hosts
// (default 127.0.0.1 and localhost) and a client certificate. The server
// config asks for client certificates signed by the CA when clientAuth is
// true.
func Generate(dir string, clientAuth bool, hosts ...string) (*Files, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			for _, h := range hosts {
				if ip := net.ParseIP(h); ip != nil {
					tpl.IPAddresses = append(tpl.IPAddresses, ip)
				} else {
					tpl.DNSNames = append(tpl.DNSNames, h)
				}
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
		return key, der, err
	}
	srvKey, srvDER, err := leaf(2, "server", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	cliKey, cliDER, err := leaf(3, "sluice", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	f := &Files{
		CA:         filepath.Join(dir, "ca.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
	}
	keyPEM := func(k *ecdsa.PrivateKey) ([]byte, error) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	cliKeyPEM, err := keyPEM(cliKey)
	if err != nil {
		return nil, err
	}
	srvKeyPEM, err := keyPEM(srvKey)
	if err != nil {
		return nil, err
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	files := map[string][]byte{f.CA: certPEM(caDER), f.ClientCert: certPEM(cliDER), f.ClientKey: cliKeyPEM,
		f.ServerCert: certPEM(srvDER), f.ServerKey: srvKeyPEM}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	srvCert, err := tls.X509KeyPair(certPEM(srvDER), srvKeyPEM)
	if err != nil {
		return nil, err
	}
	f.Server = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		f.Server.ClientCAs = pool
		f.Server.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return f, nil
}

// Listen starts a TLS server on a free port of 127.0.0.1 with a certificate
// of a throwaway CA that no client trusts, until the end of the test: it
// completes every handshake a client lets it complete and says nothing
// else, for tests of how a client reports a certificate it does not trust.
// It returns the address.
func Listen(t testing.TB) string {
	t.Helper()
	files, err := Generate(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", files.Server)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	})
}
