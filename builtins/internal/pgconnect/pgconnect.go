// Package pgconnect is what the PostgreSQL connectors share to talk to the
// server through pgconn alone: the connection settings from a DSN, the
// server's name for messages, identifier quoting, and catalog queries whose
// values stay text. pgx's Conn would do the same through its type system,
// which registers every pgtype codec and costs megabytes of the binary
// (docs/edge.md); the connectors' data already travels as text.
package pgconnect

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Settings are what a connector puts over the DSN's own settings.
type Settings struct {
	DSN      string
	Password string      // replaces the DSN's (and PGPASSWORD's, the passfile's) when not empty
	TLS      *tls.Config // replaces sslmode and the DSN's certificates when not nil
	// Params are session parameters that replace the DSN's: what the
	// connector's decoding of text values relies on.
	Params map[string]string
}

// ErrParse is Config's error for a DSN pgconn cannot parse. It is fixed on
// purpose: pgconn's own message quotes the DSN, which may hold a password.
var ErrParse = errors.New("cannot parse the connection string (want postgres://user@host:5432/db?sslmode=... or host=... user=... dbname=... pairs)")

// PgxOnly are the settings pgx's ParseConfig and pgxpool's ParseConfig
// (v5.13.0) take out of a DSN for themselves. pgconn alone would send them
// to the server as session parameters, which fails the connection with
// "unrecognized configuration parameter", so Config drops them: they tuned
// pgx's statement caches and pgxpool, neither of which is used any more (the
// postgres sink's pool size is its max_conns key).
var PgxOnly = []string{
	"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
	"pool_max_conns", "pool_min_conns", "pool_min_idle_conns", "pool_max_conn_lifetime",
	"pool_max_conn_idle_time", "pool_health_check_period", "pool_max_conn_lifetime_jitter", "pool_ping_timeout",
}

// Config parses s.DSN (a URL or key=value pairs; the PG* environment
// variables and the passfile fill what it leaves out, as with libpq) and
// applies the connector's settings. application_name is sluice unless the
// DSN or s.Params name another.
func Config(s Settings) (*pgconn.Config, error) {
	cc, err := pgconn.ParseConfig(s.DSN)
	if err != nil {
		return nil, ErrParse
	}
	for _, k := range PgxOnly {
		delete(cc.RuntimeParams, k)
	}
	if s.Password != "" {
		cc.Password = s.Password
	}
	if s.TLS != nil {
		cc.TLSConfig = s.TLS.Clone()
		if cc.TLSConfig.ServerName == "" {
			cc.TLSConfig.ServerName = cc.Host
		}
		// The fallbacks are sslmode's plain and TLS retries; the tls table
		// means TLS, and only that.
		cc.Fallbacks = nil
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "sluice"
	}
	for k, v := range s.Params {
		cc.RuntimeParams[k] = v
	}
	return cc, nil
}

// Where names the server for messages, host:port/db as user: never the
// DSN, which may hold a password.
func Where(cc *pgconn.Config) string {
	return Addr(cc) + "/" + cc.Database + " as " + cc.User
}

// Addr is the server's host:port.
func Addr(cc *pgconn.Config) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// Ident quotes a name, or the parts of a qualified one, for SQL: each part
// in double quotes with its double quotes doubled, the parts joined by dots.
// NUL bytes, which no identifier can hold, are dropped.
func Ident(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteByte('"')
		for j := 0; j < len(p); j++ {
			switch p[j] {
			case 0:
				continue
			case '"':
				b.WriteByte('"')
			}
			b.WriteByte(p[j])
		}
		b.WriteByte('"')
	}
	return b.String()
}
