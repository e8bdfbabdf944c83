// Package kafkaconf holds what the Kafka source and sink share: connection
// settings (brokers, SASL, TLS) and the franz-go client options built from
// them, the kgo logger adapter, and the mapping of Kafka errors to the
// component error classes.
package kafkaconf

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// SASL mechanisms.
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
)

// SASL is the `sasl` table of a Kafka connector.
type SASL struct {
	Mechanism string `toml:"mechanism" required:"true" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" doc:"SASL mechanism. PLAIN sends the password as is, so use it only over TLS."`
	Username  string `toml:"username" required:"true" doc:"SASL user name."`
	Password  Secret `toml:"password" required:"true" doc:"SASL password. Write it as \"${env:VAR}\" to keep it out of the file; it is never logged."`
}

// mechanism returns the franz-go mechanism for s.
func (s *SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case MechPlain:
		return plain.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsMechanism(), nil
	case MechScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha256Mechanism(), nil
	case MechScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("sasl.mechanism: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism)
}

// TLS is the `tls` table of a Kafka connector. Its presence turns TLS on.
type TLS struct {
	Enabled            *bool  `toml:"enabled" doc:"Use TLS. Defaults to true as soon as the [tls] table is present; set false to keep the table but switch TLS off."`
	CAFile             string `toml:"ca_file" doc:"PEM file with the CA certificates that sign the brokers' certificates (default: the system pool). Relative to the task file."`
	CertFile           string `toml:"cert_file" doc:"PEM client certificate for mutual TLS (needs key_file). Relative to the task file."`
	KeyFile            string `toml:"key_file" doc:"PEM private key of cert_file. Relative to the task file."`
	ServerName         string `toml:"server_name" doc:"Name to verify the brokers' certificates against (default: the host of each broker address)."`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify" doc:"Accept any broker certificate. For tests only: it disables protection against impersonation."`
}

// Validate checks that the certificate and key come together.
func (t *TLS) Validate(p *component.Problems) { t.client().Validate(p) }

func (t *TLS) client() *tlsconf.Client {
	return &tlsconf.Client{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

func (t *TLS) on() bool { return t != nil && (t.Enabled == nil || *t.Enabled) }

// Config loads the files t names (relative to dir) into a tls.Config.
func (t *TLS) Config(dir string) (*tls.Config, error) { return t.client().Config(dir) }

// Conn is the connection part of a Kafka connector's config. The source and
// sink config structs carry the same keys (brokers, client_id, sasl, tls,
// dial_timeout) and build a Conn from them.
type Conn struct {
	Brokers     []string
	ClientID    string
	SASL        *SASL
	TLS         *TLS
	DialTimeout time.Duration
}

// ValidateBrokers reports each broker address that is not host:port. sub is
// the key holding the list.
func ValidateBrokers(p *component.Problems, sub string, brokers []string) {
	if len(brokers) == 0 {
		p.Addf([]string{sub}, "must list at least one broker as \"host:port\"")
		return
	}
	for i, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			hint := ""
			if !strings.Contains(b, ":") {
				hint = fmt.Sprintf(" (did you mean %q?)", b+":9092")
			}
			p.Addf([]string{sub, component.Index(i)}, "invalid broker address %q: want \"host:port\"%s", b, hint)
			continue
		}
		n, err := strconv.Atoi(port)
		if host == "" || err != nil || n < 1 || n > 65535 {
			p.Addf([]string{sub, component.Index(i)}, "invalid broker address %q: want \"host:port\" with a port in 1..65535", b)
		}
	}
}

// Options returns the franz-go options for c. dir resolves relative file
// paths; it reads the TLS files but makes no connection.
func (c Conn) Options(dir string, log zerolog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.WithLogger(NewLogger(log)),
	}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(c.DialTimeout))
	}
	if c.TLS.on() {
		tc, err := c.TLS.Config(dir)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL != nil {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// TopicProblem says what is wrong with a topic name (Kafka's rules), or "".
func TopicProblem(t string) string {
	switch {
	case t == "":
		return "topic name must not be empty"
	case t == "." || t == "..":
		return fmt.Sprintf("invalid topic name %q", t)
	case len(t) > 249:
		return fmt.Sprintf("topic name %q is longer than Kafka's limit of 249 characters", t[:20]+"…")
	}
	if i := strings.IndexFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Sprintf("invalid topic name %q: Kafka allows only letters, digits, '.', '_' and '-'", t)
	}
	return ""
}
