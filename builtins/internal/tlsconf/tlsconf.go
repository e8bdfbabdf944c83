// Package tlsconf is the `tls` table connectors share: a Client (a sink or a
// consumer dialing a server) or a Server (an ingest source). Paths are
// relative to the task file's folder; loading reads files only, so Build can
// report a missing certificate at load time.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/runtime/component"
)

// Client is the `tls` table of a connector that dials out.
type Client struct {
	CAFile             string `toml:"ca_file" doc:"PEM CA certificates to trust instead of the system roots. Relative to the task file."`
	CertFile           string `toml:"cert_file" doc:"PEM client certificate for mutual TLS (needs key_file). Relative to the task file."`
	KeyFile            string `toml:"key_file" doc:"PEM private key of cert_file. Relative to the task file."`
	ServerName         string `toml:"server_name" doc:"Name to verify the server's certificate against (default: the host dialed)."`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify" doc:"Accept any server certificate. For tests only: it disables protection against impersonation."`
}

// Validate checks that the certificate and key come together.
func (c *Client) Validate(p *component.Problems) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			p.KeyErrorf(nil, "key_file is set without cert_file: mutual TLS needs both")
		} else {
			p.KeyErrorf(nil, "cert_file is set without key_file: mutual TLS needs both")
		}
	}
}

// Config loads the files c names (relative to dir) into a tls.Config.
func (c *Client) Config(dir string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // documented test-only switch
	}
	if c.CAFile != "" {
		pool, err := loadPool(dir, c.CAFile, "tls.ca_file")
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(Resolve(dir, c.CertFile), Resolve(dir, c.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Server is the `tls` table of a connector that listens.
type Server struct {
	CertFile     string `toml:"cert_file" required:"true" doc:"PEM certificate (chain) the server presents. Relative to the task file."`
	KeyFile      string `toml:"key_file" required:"true" doc:"PEM private key of cert_file. Relative to the task file."`
	ClientCAFile string `toml:"client_ca_file" doc:"PEM CA certificates; when set, clients must present a certificate they sign (mutual TLS)."`
}

// Config loads the files s names (relative to dir) into a tls.Config.
func (s *Server) Config(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(Resolve(dir, s.CertFile), Resolve(dir, s.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.ClientCAFile != "" {
		pool, err := loadPool(dir, s.ClientCAFile, "tls.client_ca_file")
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Problem tells the TLS failures of a dial that retrying does not fix: the
// server's certificate not trusted (an unknown CA, another name, expired)
// or a server that does not speak TLS. It returns what to change; ok is
// false for every other error (a refused or reset connection is retried).
func Problem(err error) (hint string, ok bool) {
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &hostname):
		return "the server's certificate is for another name: connect by a name it holds, or set tls.server_name", true
	case errors.As(err, &invalid):
		return "the server's certificate is not valid (expired or not yet valid, or not for a server): renew it on the server", true
	case errors.As(err, &verify), errors.As(err, &unknownCA):
		return "the server's certificate is not signed by a CA this client trusts: set tls.ca_file to the CA that signs it", true
	case errors.As(err, &header):
		return "the server does not speak TLS: use its TLS port, or connect without TLS", true
	}
	return "", false
}

func loadPool(dir, file, key string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(Resolve(dir, file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", key, file)
	}
	return pool, nil
}

// Resolve makes path relative to dir unless it is absolute.
func Resolve(dir, path string) string {
	if filepath.IsAbs(path) || dir == "" {
		return path
	}
	return filepath.Join(dir, path)
}
