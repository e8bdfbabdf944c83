// Package natsconf is what the `nats` source and sink share: the connection
// keys (servers, credentials, TLS), connecting with reconnects that never
// give up, and mapping NATS and JetStream failures to Sluice's error
// classes with messages that say what to change.
package natsconf

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Conn is the connection part of a nats source or sink table.
type Conn struct {
	URL             string             `toml:"url" required:"true" doc:"Server URL, \"nats://host:4222\" (\"tls://\" for TLS); several comma-separated URLs of one cluster are tried in turn. User and password may be given in it (\"nats://user:pass@host:4222\"), but user/password keep them out of the file."`
	User            string             `toml:"user" doc:"User name for user/password authentication."`
	Password        component.Secret   `toml:"password" doc:"Password of user; use \"${env:NAME}\" to keep it out of the file."`
	Token           component.Secret   `toml:"token" doc:"Authentication token."`
	CredentialsFile string             `toml:"credentials_file" doc:"A .creds file (JWT and NKey seed) for decentralized authentication. Relative to the task file."`
	NKeyFile        string             `toml:"nkey_file" doc:"A file holding an NKey seed (\"SU...\"). Relative to the task file."`
	TLS             *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	ConnectTimeout  component.Duration `toml:"connect_timeout" doc:"Longest time to open the connection to one server."`
	ReconnectWait   component.Duration `toml:"reconnect_wait" doc:"Time between reconnect attempts after the connection is lost. The client reconnects forever; what cannot be delivered meanwhile is retried under the task's retry policy."`
}

// DefaultConn returns the connection defaults.
func DefaultConn() Conn {
	return Conn{ConnectTimeout: component.Duration(10 * time.Second), ReconnectWait: component.Duration(time.Second)}
}

// Validate checks the keys without I/O.
func (c *Conn) Validate(p *component.Problems) {
	for _, u := range strings.Split(c.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || !validScheme(pu.Scheme) {
			p.Addf([]string{"url"}, "invalid NATS URL %q: want e.g. \"nats://127.0.0.1:4222\"", Redact(u))
		}
	}
	if c.Password != "" && c.User == "" {
		p.KeyErrorf([]string{"password"}, "password needs user")
	}
	n := 0
	for _, set := range []bool{c.User != "", c.Token != "", c.CredentialsFile != "", c.NKeyFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		p.KeyErrorf(nil, "user, token, credentials_file and nkey_file are exclusive: keep one way to authenticate")
	}
	if c.ConnectTimeout.D() <= 0 {
		p.Addf([]string{"connect_timeout"}, "must be positive")
	}
	if c.ReconnectWait.D() <= 0 {
		p.Addf([]string{"reconnect_wait"}, "must be positive")
	}
}

func validScheme(s string) bool {
	switch s {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

// Redact hides the password of a URL for messages.
func Redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return u
	}
	if _, ok := pu.User.Password(); ok {
		pu.User = url.UserPassword(pu.User.Username(), "xxxxx")
	}
	return pu.String()
}

// Servers renders the URL list for messages, passwords hidden.
func (c *Conn) Servers() string {
	parts := strings.Split(c.URL, ",")
	for i := range parts {
		parts[i] = Redact(strings.TrimSpace(parts[i]))
	}
	return strings.Join(parts, ",")
}

// Options returns the client options: a name, credentials, TLS, and
// reconnects that never give up. Connection events are logged to log.
// dir resolves relative file names.
func (c *Conn) Options(name, dir string, log zerolog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(c.ConnectTimeout.D()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait.D()),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats: connection lost; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", Redact(nc.ConnectedUrl())).Msg("nats: reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subscription", sub.Subject)
			}
			ev.Msg("nats: asynchronous error")
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password.Reveal()))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token.Reveal()))
	case c.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(tlsconf.Resolve(dir, c.CredentialsFile)))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(tlsconf.Resolve(dir, c.NKeyFile))
		if err != nil {
			return nil, fmt.Errorf("nkey_file: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config(dir)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// Connect opens the connection and a JetStream context on it, checking
// that JetStream is enabled when needJS is set. Failures are classified:
// refused credentials and a server without JetStream are task-permanent,
// an unreachable server retryable.
func Connect(ctx context.Context, c *Conn, opts []nats.Option, needJS bool, jsOpts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, Classify(fmt.Errorf("connect to %s: %w", c.Servers(), err))
	}
	js, err := jetstream.New(nc, jsOpts...)
	if err != nil {
		nc.Close()
		return nil, nil, component.TaskPermanent(fmt.Errorf("jetstream on %s: %w", c.Servers(), err))
	}
	if needJS {
		if _, err := js.AccountInfo(ctx); err != nil {
			nc.Close()
			return nil, nil, Classify(fmt.Errorf("jetstream on %s: %w", c.Servers(), err))
		}
	}
	return nc, js, nil
}

// ClosedByClient is the error for nc, a connection the client closed by
// itself: it reconnects forever, except to a server that refused the
// credentials twice in a row. Nothing goes through it again, so the task
// stops (task-permanent) with the reason; a restart connects again.
func ClosedByClient(c *Conn, nc *nats.Conn, what string) error {
	cause := nc.LastError()
	if cause == nil {
		cause = nats.ErrConnectionClosed
	}
	err := Classify(fmt.Errorf("%s: the client closed the connection to %s and stopped reconnecting: %w", what, c.Servers(), cause))
	if component.ClassOf(err) != component.ClassTaskPermanent {
		err = component.TaskPermanent(err)
	}
	return err
}

// Classify maps err to its class, adding what to change where the user can.
func Classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return component.TaskPermanent(fmt.Errorf("%w: the server refused the credentials; check user/password, token, credentials_file or nkey_file", err))
	case errors.Is(err, nats.ErrPermissionViolation), strings.Contains(strings.ToLower(err.Error()), "permissions violation"):
		return component.TaskPermanent(fmt.Errorf("%w: the user lacks a permission it needs; grant it on the server", err))
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return component.TaskPermanent(fmt.Errorf("%w: enable JetStream on the server (nats-server -js) and for the account, or use a server that has it", err))
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadHeaderMsg):
		return component.EventPermanent(err)
	}
	if hint, ok := tlsconf.Problem(err); ok {
		return component.TaskPermanent(fmt.Errorf("%w: %s", err, hint))
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.Code == 401 || apiErr.Code == 403:
			return component.TaskPermanent(err)
		case apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return component.EventPermanent(err)
		case apiErr.Code == 400:
			return component.TaskPermanent(err)
		}
	}
	return component.Retryable(err, 0)
}

// NameProblem describes what is wrong with a stream or consumer name, or
// returns "".
func NameProblem(name string) string {
	if strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return fmt.Sprintf("invalid name %q: stream and consumer names cannot hold spaces, '.', '*', '>', '/' or '\\'", name)
	}
	if len(name) > 255 {
		return "a name is at most 255 characters"
	}
	return ""
}

// MaxSubject is the longest subject accepted: a PUB, HPUB or SUB line
// longer than the server's max_control_line (4096 bytes by default) makes
// the server close the connection, failing everything in flight on it; the
// rest of the line (reply subject, sizes, queue group) fits in what is
// left.
const MaxSubject = 3584

// HeaderProblem describes what is wrong with a header for NATS, or returns
// "": a name is printable ASCII without ':' or spaces, a value holds no CR
// or LF (the wire format is HTTP-like lines; nats.go sends anything and the
// server, or the receiving client, refuses the message).
func HeaderProblem(name, value string) string {
	if name == "" {
		return "a header name cannot be empty"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Sprintf("invalid header name %q: printable ASCII without spaces or ':' only", name)
		}
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Sprintf("header %q: a value cannot hold CR or LF", name)
	}
	return ""
}

// SubjectProblem describes what is wrong with a subject, or returns "".
// Wildcards ('*' as a whole token, '>' as the last one) are allowed only
// when wild is set.
func SubjectProblem(s string, wild bool) string {
	if s == "" {
		return "a subject cannot be empty"
	}
	if len(s) > MaxSubject {
		return fmt.Sprintf("a subject of %d bytes (%.40q...) is longer than %d: the line that carries it would pass the server's max_control_line (4 KiB by default), and the server closes the connection on it", len(s), s, MaxSubject)
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Sprintf("invalid subject %q: subjects cannot hold whitespace", s)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Sprintf("invalid subject %q: empty token (two dots, or a dot at an end)", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Sprintf("invalid subject %q: '>' must be the last token", s)
		case (t == "*" || t == ">") && !wild:
			return fmt.Sprintf("invalid subject %q: a subject to publish to cannot hold the wildcards '*' or '>'", s)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Sprintf("invalid subject %q: wildcards '*' and '>' must be whole tokens", s)
		}
	}
	return ""
}
