package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/runtime/component"
)

// sessionParams make the server print values the way the converters read
// them, whatever the server's or the role's defaults.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"bytea_output":       "hex",
	"extra_float_digits": "1",
	"application_name":   "sluice",
}

// connConfig parses the DSN into a pgx config with the password, TLS and
// session settings applied. The error never quotes the DSN.
func (s *Source) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(s.cfg.DSN.Reveal())
	if err != nil {
		return nil, component.TaskPermanent(fmt.Errorf("dsn: %s", redactParseError(err)))
	}
	if s.cfg.Password != "" {
		cc.Password = s.cfg.Password.Reveal()
	}
	if s.tls != nil {
		cc.TLSConfig = s.tls.Clone()
		if cc.TLSConfig.ServerName == "" {
			cc.TLSConfig.ServerName = cc.Host
		}
		cc.Fallbacks = nil
	}
	for k, v := range sessionParams {
		cc.RuntimeParams[k] = v
	}
	return cc, nil
}

// redactParseError keeps pgconn's parse error from echoing the DSN: the
// underlying URL error quotes it, password and all.
func redactParseError(error) string {
	return "cannot parse the connection string (want postgres://user@host:5432/db?sslmode=... or host=... user=... dbname=... pairs)"
}

// where names the server for messages: host:port/db as user.
func where(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("%s/%s as %s", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database, cc.User)
}

// connect opens a regular connection.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, classifyConnect(err, cc)
	}
	return c, nil
}

// connectReplication opens a logical replication connection.
func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	pc := cc.Config.Copy()
	pc.RuntimeParams["replication"] = "database"
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, classifyConnect(err, cc)
	}
	return c, nil
}

// classifyConnect turns a connection failure into an error that says what
// to change: refused credentials, an unknown database or a missing
// replication privilege stop the task; an unreachable server is retried.
func classifyConnect(err error, cc *pgx.ConnConfig) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return component.TaskPermanent(fmt.Errorf("postgres %s: authentication failed (%s): check the password (the password key, the DSN or PGPASSWORD) and pg_hba.conf", where(cc), pe.Message))
		case "3D000":
			return component.TaskPermanent(fmt.Errorf("postgres %s: database %q does not exist: fix the database in dsn", where(cc), cc.Database))
		case "42501":
			return component.TaskPermanent(fmt.Errorf("postgres %s: %s: the role needs the REPLICATION attribute (ALTER ROLE %s REPLICATION) and CONNECT on the database", where(cc), pe.Message, cc.User))
		}
		if len(pe.Code) >= 2 && pe.Code[:2] == "28" {
			return component.TaskPermanent(fmt.Errorf("postgres %s: %s", where(cc), pe.Message))
		}
	}
	return component.Retryable(fmt.Errorf("postgres %s: cannot connect: %w", where(cc), unwrapConnect(err)), 0)
}

func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}
