// Package amqpconf is what the RabbitMQ source and sink share: dialing a
// broker from the `url` and `tls` keys, declaring what is missing (and
// saying so), and mapping AMQP failures to the engine's error classes with
// messages that say what to change.
package amqpconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Exchange types a missing exchange is declared with.
const ExchangeTypes = "direct,fanout,topic,headers"

// Conn holds the connection settings of a source or sink.
type Conn struct {
	URL         string
	TLS         *tlsconf.Client
	Heartbeat   time.Duration
	DialTimeout time.Duration
	// Name shows in the broker's connection list ("sluice orders source").
	Name string
	Dir  string // task folder, for relative TLS files
}

// ValidateURL reports a url the client cannot parse, without echoing the
// password it may hold.
func ValidateURL(p *component.Problems, key string, raw string) {
	if raw == "" {
		return
	}
	u, err := amqp.ParseURI(raw)
	if err != nil {
		p.Addf([]string{key}, "invalid AMQP URL %s: %s (want e.g. \"amqp://user:password@host:5672/vhost\" or amqps:// for TLS)", Redact(raw), errText(err))
		return
	}
	if u.Host == "" {
		p.Addf([]string{key}, "the AMQP URL %s names no host", Redact(raw))
	}
}

func errText(err error) string {
	// ParseURI's errors may quote the URL: keep only the reason.
	s := err.Error()
	if i := strings.Index(s, "amqp://"); i >= 0 {
		return "malformed URL"
	}
	return s
}

// Redact returns raw with its password replaced by "xxxxx", for logs and
// error messages.
func Redact(raw string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
		}
		return raw
	}
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.Username != "" {
		b.WriteString(u.Username)
		b.WriteString("@")
	}
	b.WriteString(net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	b.WriteString("/")
	if u.Vhost != "/" {
		b.WriteString(u.Vhost)
	}
	return b.String()
}

// Source returns the CloudEvents source of queue on the broker raw names:
// "amqp://host:port/<vhost, path-escaped>/<queue>", without credentials.
func Source(raw, queue string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		return "amqp:///" + url.PathEscape(queue)
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) + "/" + url.PathEscape(u.Vhost) + "/" + url.PathEscape(queue)
}

// Vhost returns the virtual host raw names ("/" by default).
func Vhost(raw string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		return "/"
	}
	return u.Vhost
}

// Dial connects to the broker. A refused login or vhost is task-permanent,
// with what to change; everything else (refused connection, timeout) is
// retryable.
func (c Conn) Dial() (*amqp.Connection, error) {
	cfg := amqp.Config{
		Heartbeat:  c.Heartbeat,
		Locale:     "en_US",
		Dial:       amqp.DefaultDial(c.DialTimeout),
		Properties: amqp.NewConnectionProperties(),
	}
	cfg.Properties.SetClientConnectionName(c.Name)
	u, err := amqp.ParseURI(c.URL)
	if err != nil {
		return nil, component.TaskPermanent(fmt.Errorf("invalid AMQP URL %s: %s", Redact(c.URL), errText(err)))
	}
	if c.TLS != nil || u.Scheme == "amqps" {
		var tc *tls.Config
		if c.TLS != nil {
			if tc, err = c.TLS.Config(c.Dir); err != nil {
				return nil, component.TaskPermanent(err)
			}
		} else {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Host
		}
		cfg.TLSClientConfig = tc
	}
	conn, err := amqp.DialConfig(c.URL, cfg)
	if err != nil {
		return nil, c.classifyDial(err)
	}
	return conn, nil
}

func (c Conn) classifyDial(err error) error {
	where := Redact(c.URL)
	var ae *amqp.Error
	switch {
	case errors.Is(err, amqp.ErrCredentials):
		return component.TaskPermanent(fmt.Errorf("RabbitMQ at %s refused the login: fix the user name or password in url (%w)", where, err))
	case errors.Is(err, amqp.ErrVhost):
		return component.TaskPermanent(fmt.Errorf("RabbitMQ at %s refused access to vhost %q: create the vhost, grant the user permissions on it, or fix the vhost in url (%w)", where, Vhost(c.URL), err))
	case errors.Is(err, amqp.ErrSASL):
		return component.TaskPermanent(fmt.Errorf("RabbitMQ at %s offers no login mechanism the client supports (PLAIN, AMQPLAIN): enable one on the broker (%w)", where, err))
	case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
		return component.TaskPermanent(fmt.Errorf("RabbitMQ at %s refused the connection: check the user, password and vhost in url (%w)", where, err))
	}
	if hint, ok := tlsconf.Problem(err); ok {
		return component.TaskPermanent(fmt.Errorf("connect to RabbitMQ at %s: %s (%w)", where, hint, err))
	}
	return component.Retryable(fmt.Errorf("connect to RabbitMQ at %s: %w", where, err), 0)
}

// Classify maps a failure of a channel operation (declare, bind, consume,
// publish) to its class: access refused, an unknown object or a mismatched
// declaration needs a change of configuration; a closed connection is
// retried.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed, amqp.NotImplemented, amqp.CommandInvalid:
			return component.TaskPermanent(err)
		}
	}
	// A closed connection, EOF, a timeout: retried.
	return component.Retryable(err, 0)
}

// IsNotFound reports a 404 NOT_FOUND channel error (no such queue or
// exchange).
func IsNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// QueueArgs returns the declare arguments of a queue of type typ
// ("classic", "quorum", "stream"; "" for the broker's default).
func QueueArgs(typ string) amqp.Table {
	if typ == "" {
		return nil
	}
	return amqp.Table{"x-queue-type": typ}
}

// EnsureQueue checks that queue exists; when it does not and declare is
// set, it declares it durable (with type typ) and logs that it did. It may
// close ch (a failed passive declare closes the channel) and returns the
// channel to go on with.
func EnsureQueue(conn *amqp.Connection, ch *amqp.Channel, queue, typ string, declare bool, log zerolog.Logger, where string) (*amqp.Channel, error) {
	_, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err == nil {
		return ch, nil
	}
	if !IsNotFound(err) {
		return nil, Classify(fmt.Errorf("check queue %q on %s: %w", queue, where, err))
	}
	if !declare {
		return nil, component.TaskPermanent(fmt.Errorf("queue %q does not exist in vhost %q on %s: create it, fix `queue`, or set declare = true to have Sluice create it", queue, Vhost(where), where))
	}
	if ch, err = conn.Channel(); err != nil {
		return nil, component.Retryable(fmt.Errorf("open a channel on %s: %w", where, err), 0)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, QueueArgs(typ)); err != nil {
		return nil, Classify(fmt.Errorf("declare queue %q on %s: %w", queue, where, err))
	}
	log.Info().Str("queue", queue).Str("queue_type", typ).Msg("queue did not exist: declared it (durable)")
	return ch, nil
}

// EnsureExchange checks that exchange exists; when it does not and declare
// is set, it declares it durable with kind and logs that it did. Like
// EnsureQueue it returns the channel to go on with.
func EnsureExchange(conn *amqp.Connection, ch *amqp.Channel, exchange, kind string, declare bool, log zerolog.Logger, where string) (*amqp.Channel, error) {
	if exchange == "" || strings.HasPrefix(exchange, "amq.") {
		return ch, nil // the default exchange and the predeclared ones always exist
	}
	err := ch.ExchangeDeclarePassive(exchange, kind, true, false, false, false, nil)
	if err == nil {
		return ch, nil
	}
	if !IsNotFound(err) {
		return nil, Classify(fmt.Errorf("check exchange %q on %s: %w", exchange, where, err))
	}
	if !declare {
		return nil, component.TaskPermanent(fmt.Errorf("exchange %q does not exist in vhost %q on %s: create it, fix `exchange`, or set declare = true to have Sluice create it", exchange, Vhost(where), where))
	}
	if ch, err = conn.Channel(); err != nil {
		return nil, component.Retryable(fmt.Errorf("open a channel on %s: %w", where, err), 0)
	}
	if err := ch.ExchangeDeclare(exchange, kind, true, false, false, false, nil); err != nil {
		return nil, Classify(fmt.Errorf("declare exchange %q (%s) on %s: %w", exchange, kind, where, err))
	}
	log.Info().Str("exchange", exchange).Str("exchange_type", kind).Msg("exchange did not exist: declared it (durable)")
	return ch, nil
}
