// Package redisconf is what the `redis` source and sink share: the
// connection keys (URL, credentials, TLS), a small pool of redigo
// connections that leaves retries to Sluice, and mapping Redis failures to
// Sluice's error classes with messages that say what to change.
package redisconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

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
	if _, err := ParseURL(c.URL); err != nil {
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

// Target is where and how to connect, from the URL.
type Target struct {
	Network  string // tcp or unix
	Addr     string // host:port, or the socket's path
	DB       int
	Username string
	Password string
	TLS      bool // rediss://
}

// ParseURL reads redis://[user:password@]host[:port][/db] (rediss:// for
// TLS; unix:///path/to/socket[?db=N] for a local socket). The host defaults
// to localhost, the port to 6379; ?db=N sets the database too. The URL
// takes no other options: the connector's keys set what it needs.
func ParseURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, err
	}
	var t Target
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
	}
	switch u.Scheme {
	case "redis", "rediss":
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "6379"
		}
		t.Network, t.Addr, t.TLS = "tcp", net.JoinHostPort(host, port), u.Scheme == "rediss"
		switch f := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' }); len(f) {
		case 0:
		case 1:
			if t.DB, err = strconv.Atoi(f[0]); err != nil {
				return Target{}, fmt.Errorf("invalid database number %q in the path", f[0])
			}
		default:
			return Target{}, fmt.Errorf("invalid path %q: want /<database number>", u.Path)
		}
	case "unix":
		if strings.TrimSpace(u.Path) == "" {
			return Target{}, errors.New("no socket path")
		}
		t.Network, t.Addr = "unix", u.Path
	default:
		return Target{}, fmt.Errorf("invalid scheme %q", u.Scheme)
	}
	q := u.Query()
	if v := q.Get("db"); v != "" {
		if t.DB, err = strconv.Atoi(v); err != nil {
			return Target{}, fmt.Errorf("invalid database number %q in db=", v)
		}
	}
	delete(q, "db")
	for k := range q {
		return Target{}, fmt.Errorf("unknown URL option %q (only db is read)", k)
	}
	return t, nil
}

// Client returns a pool of connections to the server, not connected yet.
// A command is never retried by the client: a retried XADD or XREADGROUP
// whose first reply was lost would write twice or hand entries out unseen;
// Sluice's own retries know what was delivered. dir resolves relative file
// names; name is the client name shown by CLIENT LIST; readTimeout bounds
// a command or a pipeline, from its write to its last reply (a blocking
// command needs more than its block);
// idle is how many idle connections are kept.
func (c *Conn) Client(name, dir string, readTimeout time.Duration, idle int) (*Client, error) {
	t, err := ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if c.Username != "" {
		t.Username = c.Username
	}
	if c.Password != "" {
		t.Password = c.Password.Reveal()
	}
	opts := []redis.DialOption{
		redis.DialClientName(name),
		redis.DialDatabase(t.DB),
		redis.DialTLSHandshakeTimeout(c.DialTimeout),
		redis.DialUsername(t.Username),
		redis.DialPassword(t.Password),
	}
	cl := &Client{target: t, dialTimeout: c.DialTimeout, timeout: readTimeout, maxIdle: max(idle, 1), tls: t.TLS || c.TLS != nil}
	switch {
	case c.TLS != nil:
		tc, err := c.TLS.Config(dir)
		if err != nil {
			return nil, err
		}
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(tc)) // redigo names the host dialed when ServerName is empty
	case t.TLS:
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	cl.opts = opts
	return cl, nil
}

// Classify maps err to its class. A server reply that refuses the
// credentials or a permission stops the task; one that refuses the data
// (a key holding another type, a value over a limit) fails the record when
// sink is set and stops the task otherwise (a source cannot skip its
// stream); the others (network, and states of the server: loading, out of
// memory, read-only replica, unable to persist to disk, busy script, cluster
// or master down, too few replicas) are retried.
func Classify(err error, sink bool) error {
	if err == nil {
		return nil
	}
	if hint, ok := tlsconf.Problem(err); ok {
		return component.TaskPermanent(fmt.Errorf("%w: %s", err, hint))
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
	case "OOM", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "MOVED", "ASK", "NOREPLICAS",
		// MISCONF: writes are refused while the server cannot persist (a
		// failed BGSAVE, a full disk, stop-writes-on-bgsave-error); a state
		// of the server, not of the record.
		"MISCONF",
		// UNBLOCKED: CLIENT UNBLOCK ... ERROR ended a blocking read.
		"UNBLOCKED":
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
