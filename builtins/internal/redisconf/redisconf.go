// Package redisconf is what the `redis` source and sink share: the
// connection keys (URL, credentials, TLS), building a go-redis client that
// leaves retries to Sluice, and mapping Redis failures to Sluice's error
// classes with messages that say what to change.
package redisconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Conn is the connection part of a redis source or sink table.
type Conn struct {
	URL         string
	Username    string
	Password    component.Secret
	TLS         *tlsconf.Client
	DialTimeout time.Duration
}

// Validate checks the URL without I/O.
func (c *Conn) Validate(p *component.Problems) {
	if c.URL == "" {
		return
	}
	if _, err := redis.ParseURL(c.URL); err != nil {
		p.Addf([]string{"url"}, "invalid Redis URL %q: %v (want e.g. \"redis://127.0.0.1:6379/0\", \"rediss://\" for TLS)", Redact(c.URL), err)
	}
	if c.DialTimeout <= 0 {
		p.Addf([]string{"dial_timeout"}, "must be positive")
	}
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

// Options returns the client options. The client does not retry commands
// itself: a retried XADD or XREADGROUP whose first reply was lost would
// write twice or hand entries out unseen; Sluice's own retries know what
// was delivered. dir resolves relative file names; name is the client
// name shown by CLIENT LIST.
func (c *Conn) Options(name, dir string) (*redis.Options, error) {
	o, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if c.Username != "" {
		o.Username = c.Username
	}
	if c.Password != "" {
		o.Password = c.Password.Reveal()
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config(dir)
		if err != nil {
			return nil, err
		}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(o.Addr)
		}
		o.TLSConfig = tc
	}
	o.ClientName = name
	o.Protocol = 2 // replies as arrays, in the order Redis keeps them
	o.MaxRetries = -1
	o.DialTimeout = c.DialTimeout
	o.DisableIdentity = true
	return o, nil
}

// Ping checks that the server answers and accepts the credentials.
func Ping(ctx context.Context, rdb *redis.Client, what string) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return Classify(fmt.Errorf("%s: %w", what, err), false)
	}
	return nil
}

// Classify maps err to its class. A server reply that refuses the
// credentials or a permission stops the task; one that refuses the data
// (a key holding another type, a value over a limit) fails the record when
// sink is set and stops the task otherwise (a source cannot skip its
// stream); the others (network, loading, out of memory, read-only replica)
// are retried.
func Classify(err error, sink bool) error {
	if err == nil {
		return nil
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return component.Retryable(err, 0)
	}
	msg := re.Error()
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "NOAUTH", "WRONGPASS":
		return component.TaskPermanent(fmt.Errorf("%w: the server refused the credentials; check the password (and user name) in url or password/username", err))
	case "NOPERM":
		return component.TaskPermanent(fmt.Errorf("%w: the user lacks a permission it needs; grant it with ACL SETUSER", err))
	case "OOM", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "MOVED", "ASK", "NOREPLICAS":
		return component.Retryable(err, 0)
	case "ERR":
		if strings.Contains(msg, "invalid password") || strings.Contains(msg, "AUTH") && strings.Contains(msg, "without any password") {
			return component.TaskPermanent(fmt.Errorf("%w: check the password in url or password", err))
		}
		if strings.Contains(msg, "max number of clients") {
			return component.Retryable(err, 0)
		}
	}
	if sink {
		return component.EventPermanent(err)
	}
	return component.TaskPermanent(err)
}
