package postgrescdc

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/runtime/component"
)

// sessionParams make the server print values the way the converters read
// them, whatever the server's or the role's defaults. application_name is
// the DSN's, or sluice (pgconnect.Config).
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"bytea_output":       "hex",
	"extra_float_digits": "1",
}

// connConfig parses the DSN into a pgconn config with the password, TLS and
// session settings applied. The error never quotes the DSN.
func (s *Source) connConfig() (*pgconn.Config, error) {
	cc, err := pgconnect.Config(pgconnect.Settings{DSN: s.cfg.DSN.Reveal(), Password: s.cfg.Password.Reveal(), TLS: s.tls, Params: sessionParams})
	if err != nil {
		return nil, component.TaskPermanent(fmt.Errorf("dsn: %w", err))
	}
	return cc, nil
}

// connect opens a regular connection.
func (s *Source) connect(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	c, err := pgconn.ConnectConfig(ctx, cc)
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
	cc.RuntimeParams["replication"] = "database"
	c, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, classifyConnect(err, cc)
	}
	return c, nil
}

// classifyConnect turns a connection failure into an error that says what
// to change: refused credentials, an unknown database or a missing
// replication privilege stop the task; an unreachable server is retried.
func classifyConnect(err error, cc *pgconn.Config) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return component.TaskPermanent(fmt.Errorf("postgres %s: authentication failed (%s): check the password (the password key, the DSN or PGPASSWORD) and pg_hba.conf", pgconnect.Where(cc), pe.Message))
		case "3D000":
			return component.TaskPermanent(fmt.Errorf("postgres %s: database %q does not exist: fix the database in dsn", pgconnect.Where(cc), cc.Database))
		case "42501":
			return component.TaskPermanent(fmt.Errorf("postgres %s: %s: the role needs the REPLICATION attribute (ALTER ROLE %s REPLICATION) and CONNECT on the database", pgconnect.Where(cc), pe.Message, cc.User))
		}
		if len(pe.Code) >= 2 && pe.Code[:2] == "28" {
			return component.TaskPermanent(fmt.Errorf("postgres %s: %s", pgconnect.Where(cc), pe.Message))
		}
	}
	return component.Retryable(fmt.Errorf("postgres %s: cannot connect: %w", pgconnect.Where(cc), unwrapConnect(err)), 0)
}

func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}
