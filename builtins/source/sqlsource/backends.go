package sqlsource

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/builtins/internal/pgtext"
	"github.com/sluicehq/sluice/runtime/component"
)

// pgBackend reads PostgreSQL in the text format, typed by the result's
// column types.
type pgBackend struct {
	cc    *pgconn.Config
	conv  *pgtext.Converter
	types *pgtext.TypeCache
	mu    sync.Mutex // guards conn
	busy  sync.Mutex // held by fetch while it uses conn
	conn  *pgconn.PgConn
	where string
}

// pgSessionParams make the server print values the way pgtext reads them,
// whatever the server's, the database's or the role's defaults (as
// postgres_cdc pins them): extra_float_digits = 1 prints floats in their
// shortest exact form (0 would round a float8 to 15 digits).
var pgSessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"bytea_output":       "hex",
	"extra_float_digits": "1",
}

func newPG(cfg *Config, tc *tls.Config) (*pgBackend, error) {
	cc, err := pgconnect.Config(pgconnect.Settings{DSN: cfg.DSN.Reveal(), Password: cfg.Password.Reveal(), TLS: tc,
		Params: pgSessionParams})
	if err != nil {
		return nil, err
	}
	return &pgBackend{cc: cc, conv: &pgtext.Converter{DecimalAsNumber: cfg.DecimalAsNumber}, types: pgtext.NewTypeCache(),
		where: pgconnect.Where(cc)}, nil
}

func (b *pgBackend) connect(ctx context.Context) error {
	c, err := pgconn.ConnectConfig(ctx, b.cc)
	if err != nil {
		return b.classify(err)
	}
	b.mu.Lock()
	b.conn = c
	b.mu.Unlock()
	return nil
}

func (b *pgBackend) close() {
	b.mu.Lock()
	c := b.conn
	b.conn = nil
	b.mu.Unlock()
	if c != nil {
		// A query under way ends with its connection.
		c.Conn().Close()
		b.busy.Lock()
		c.Close(context.Background())
		b.busy.Unlock()
	}
}

func (b *pgBackend) placeholder(n int) string { return "$" + strconv.Itoa(n) }
func (b *pgBackend) quote(s string) string    { return pgconnect.Ident(s) }
func (b *pgBackend) uri() string              { return "postgres://" + pgconnect.Addr(b.cc) + "/" + b.cc.Database }

func (b *pgBackend) fetch(ctx context.Context, q string, args []any) (*resultSet, error) {
	b.busy.Lock()
	defer b.busy.Unlock()
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil || c.IsClosed() {
		if err := b.connect(ctx); err != nil {
			return nil, err
		}
		b.mu.Lock()
		c = b.conn
		b.mu.Unlock()
	}
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(fmt.Sprint(a))
	}
	rr := c.ExecParams(ctx, q, params, nil, nil, nil)
	fds := rr.FieldDescriptions()
	rs := &resultSet{cols: make([]string, len(fds))}
	oids := make([]uint32, len(fds))
	for i, fd := range fds {
		rs.cols[i] = fd.Name
		oids[i] = fd.DataTypeOID
	}
	for rr.NextRow() {
		vals := rr.Values()
		row := make([][]byte, len(vals))
		for i, v := range vals {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		rs.rows = append(rs.rows, row)
	}
	if _, err := rr.Close(); err != nil {
		return nil, err
	}
	types := make([]pgtext.ColType, len(oids))
	for i, oid := range oids {
		ct, err := b.types.Get(ctx, c, oid)
		if err != nil {
			return nil, err
		}
		types[i] = ct
	}
	rs.appendValue = func(dst []byte, i int, v []byte) []byte { return b.conv.AppendValue(dst, types[i], v) }
	return rs, nil
}

func (b *pgBackend) classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := fmt.Errorf("sql source, postgres %s: %s (SQLSTATE %s)", b.where, pe.Message, pe.Code)
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return component.TaskPermanent(fmt.Errorf("sql source, postgres %s: authentication failed (%s): check the password (the password key, the DSN or PGPASSWORD)", b.where, pe.Message))
		case strings.HasPrefix(pe.Code, "42"), strings.HasPrefix(pe.Code, "28"), pe.Code == "3D000":
			return component.TaskPermanent(msg)
		}
		return component.Retryable(msg, 0)
	}
	return component.Retryable(fmt.Errorf("sql source, postgres %s: %w", b.where, err), 0)
}

// myBackend reads MariaDB/MySQL through database/sql in the text
// protocol, typed by the result's column types.
type myBackend struct {
	mc    *mysql.Config
	db    *sql.DB
	dec   bool
	where string
}

func newMy(cfg *Config, tc *tls.Config) (*myBackend, error) {
	mc, err := mysql.ParseDSN(cfg.DSN.Reveal())
	if err != nil {
		return nil, errors.New("cannot parse the connection string (want user@tcp(host:3306)/db?param=value)")
	}
	if cfg.Password != "" {
		mc.Passwd = cfg.Password.Reveal()
	}
	if tc != nil {
		mc.TLS = tc.Clone()
		if mc.TLS.ServerName == "" {
			mc.TLS.ServerName, _, _ = strings.Cut(mc.Addr, ":")
		}
	}
	// Text protocol for queries with arguments: values arrive as text.
	mc.InterpolateParams = true
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	if _, ok := mc.Params["time_zone"]; !ok {
		mc.Params["time_zone"] = "'+00:00'"
	}
	if mc.Timeout == 0 {
		mc.Timeout = 10 * time.Second
	}
	return &myBackend{mc: mc, dec: cfg.DecimalAsNumber, where: fmt.Sprintf("%s/%s as %s", mc.Addr, mc.DBName, mc.User)}, nil
}

func (b *myBackend) connect(ctx context.Context) error {
	conn, err := mysql.NewConnector(b.mc)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("sql source, mysql %s: %v", b.where, err))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return b.classify(err)
	}
	b.db = db
	return nil
}

func (b *myBackend) close() {
	if b.db != nil {
		b.db.Close()
	}
}

func (b *myBackend) placeholder(int) string { return "?" }
func (b *myBackend) quote(s string) string  { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
func (b *myBackend) uri() string            { return "mysql://" + b.mc.Addr + "/" + b.mc.DBName }

func (b *myBackend) fetch(ctx context.Context, q string, args []any) (*resultSet, error) {
	rows, err := b.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	rs := &resultSet{cols: make([]string, len(cts))}
	kinds := make([]string, len(cts))
	for i, ct := range cts {
		rs.cols[i] = ct.Name()
		kinds[i] = ct.DatabaseTypeName()
	}
	raw := make([]sql.RawBytes, len(cts))
	ptrs := make([]any, len(cts))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		rs.rows = append(rs.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rs.appendValue = func(dst []byte, i int, v []byte) []byte { return appendMySQL(dst, kinds[i], v, b.dec) }
	return rs, nil
}

// appendMySQL types a MySQL text value by its column type name.
func appendMySQL(dst []byte, typ string, v []byte, decimalAsNumber bool) []byte {
	switch typ {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT",
		"UNSIGNED INT", "UNSIGNED BIGINT", "FLOAT", "DOUBLE", "YEAR":
		return cdc.AppendNumberText(dst, v)
	case "DECIMAL":
		return cdc.AppendDecimal(dst, v, decimalAsNumber)
	case "DATETIME", "TIMESTAMP":
		// "2026-01-02 03:04:05[.ffffff]" in UTC (the session's zone).
		if len(v) >= 19 && v[10] == ' ' {
			dst = append(dst, '"')
			dst = append(dst, v[:10]...)
			dst = append(dst, 'T')
			dst = append(dst, v[11:]...)
			return append(dst, 'Z', '"')
		}
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
		return cdc.AppendBytes(dst, v)
	case "JSON":
		return cdc.AppendJSON(dst, v)
	}
	return cdc.AppendString(dst, v)
}

var (
	myTaskErrors = map[uint16]bool{1044: true, 1045: true, 1049: true, 1054: true, 1064: true, 1142: true, 1143: true, 1146: true, 1698: true}
)

func (b *myBackend) classify(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		msg := fmt.Errorf("sql source, mysql %s: %s (error %d)", b.where, me.Message, me.Number)
		if me.Number == 1045 || me.Number == 1698 {
			return component.TaskPermanent(fmt.Errorf("%w: check the password (the password key or the DSN)", msg))
		}
		if myTaskErrors[me.Number] {
			return component.TaskPermanent(msg)
		}
		return component.Retryable(msg, 0)
	}
	if errors.Is(err, driver.ErrBadConn) {
		return component.Retryable(fmt.Errorf("sql source, mysql %s: connection lost: %w", b.where, err), 0)
	}
	return component.Retryable(fmt.Errorf("sql source, mysql %s: %w", b.where, err), 0)
}
