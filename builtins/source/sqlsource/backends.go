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

	"github.com/sluicehq/sluice/builtins/internal/binlog"
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
// protocol, typed by the result's column types (and, for a table, by
// information_schema: BIT widths, MariaDB's JSON columns).
type myBackend struct {
	mc    *mysql.Config
	db    *sql.DB
	dec   bool
	where string
	table string  // the table option; "" for a query
	plan  *myPlan // how results are read, from the last one; nil before the first
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
	return &myBackend{mc: mc, dec: cfg.DecimalAsNumber, table: cfg.Table, where: fmt.Sprintf("%s/%s as %s", mc.Addr, mc.DBName, mc.User)}, nil
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

// myPlan is how the columns of a result are read: learned from a result's
// column types (and a table's information_schema), kept while results
// have the same columns.
type myPlan struct {
	sig   string   // the columns' names and types
	cols  []string // the columns' names
	kinds []string // per column, how appendMySQL types it
	// floats are the FLOAT columns. The text protocol prints a FLOAT with
	// 6 significant digits (MariaDB: 16777216 as 16777200), so each is
	// selected again as a DOUBLE (col+0e0), which prints the stored value
	// exactly, after the other columns and in this order.
	floats []int
}

// selectList is the query's select list: sluice_q.*, then the plan's
// FLOAT columns as DOUBLE.
func (p *myPlan) selectList(b *myBackend) string {
	if p == nil || len(p.floats) == 0 {
		return "*"
	}
	var sb strings.Builder
	sb.WriteString("sluice_q.*")
	for _, i := range p.floats {
		sb.WriteString(", sluice_q.")
		sb.WriteString(b.quote(p.cols[i]))
		sb.WriteString("+0e0")
	}
	return sb.String()
}

// myResult is a result before its plan is known.
type myResult struct {
	cols, types []string
	rows        [][][]byte
}

func (b *myBackend) query(ctx context.Context, q string, args []any) (*myResult, error) {
	rows, err := b.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &myResult{cols: make([]string, len(cts)), types: make([]string, len(cts))}
	for i, ct := range cts {
		res.cols[i] = ct.Name()
		res.types[i] = ct.DatabaseTypeName()
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
		res.rows = append(res.rows, row)
	}
	return res, rows.Err()
}

// fetch runs q, which begins "SELECT * FROM (": the select list becomes
// the plan's. A result whose columns differ from the plan's makes a new
// plan, and q runs again when that selects other FLOAT columns (the first
// time, and after the columns changed).
func (b *myBackend) fetch(ctx context.Context, q string, args []any) (*resultSet, error) {
	rest, ok := strings.CutPrefix(q, "SELECT * FROM ")
	if !ok {
		return nil, fmt.Errorf("sql source: unexpected query %q", q)
	}
	for attempt := 0; ; attempt++ {
		p := b.plan
		extra := 0
		if p != nil {
			extra = len(p.floats)
		}
		res, err := b.query(ctx, "SELECT "+p.selectList(b)+" FROM "+rest, args)
		if err != nil {
			if extra > 0 && attempt == 0 {
				// A FLOAT column selected again may be gone.
				b.plan = nil
				continue
			}
			return nil, err
		}
		n := len(res.cols) - extra
		if n < 0 {
			return nil, fmt.Errorf("sql source: %d columns, fewer than the %d FLOAT columns selected again", len(res.cols), extra)
		}
		if sig := mySignature(res.cols[:n], res.types[:n]); p == nil || sig != p.sig {
			np, err := b.newPlan(ctx, sig, res.cols[:n], res.types[:n])
			if err != nil {
				return nil, err
			}
			b.plan = np
			if len(np.floats) > 0 || extra > 0 {
				if attempt > 1 {
					return nil, errors.New("sql source: the result's columns keep changing")
				}
				continue // read again with the new plan's select list
			}
			p = np
		}
		rs := &resultSet{cols: res.cols[:n], rows: res.rows}
		for r, row := range res.rows {
			for k, i := range p.floats {
				row[i] = row[n+k]
			}
			res.rows[r] = row[:n]
		}
		kinds := p.kinds
		rs.appendValue = func(dst []byte, i int, v []byte) []byte { return appendMySQL(dst, kinds[i], v, b.dec) }
		return rs, nil
	}
}

func mySignature(cols, types []string) string {
	var sb strings.Builder
	for i := range cols {
		if i > 0 {
			sb.WriteByte(0)
		}
		sb.WriteString(cols[i])
		sb.WriteByte(1)
		sb.WriteString(types[i])
	}
	return sb.String()
}

// newPlan types the columns of a result. For a table, information_schema
// tells what the result does not: a BIT column's width (BIT(1) is a
// boolean) and MariaDB's JSON columns (LONGTEXT with a json_valid check),
// as mysql_cdc reads them. A query's columns are typed by the result
// alone: every BIT a number, MariaDB's JSON a string.
func (b *myBackend) newPlan(ctx context.Context, sig string, cols, types []string) (*myPlan, error) {
	p := &myPlan{sig: sig, cols: append([]string(nil), cols...), kinds: append([]string(nil), types...)}
	var sc *binlog.TableSchema
	if b.table != "" {
		schema, table, ok := strings.Cut(b.table, ".")
		if !ok {
			schema, table = b.mc.DBName, b.table
			if schema == "" {
				if err := b.db.QueryRowContext(ctx, "SELECT COALESCE(DATABASE(), '')").Scan(&schema); err != nil {
					return nil, err
				}
			}
		}
		var err error
		if sc, err = binlog.LoadSchema(ctx, b.db, schema, table); err != nil {
			return nil, err
		}
	}
	for i, t := range types {
		if t == "FLOAT" {
			p.floats = append(p.floats, i)
		}
		if sc == nil {
			continue
		}
		for _, c := range sc.Columns {
			if !strings.EqualFold(c.Name, cols[i]) {
				continue
			}
			switch {
			case t == "BIT" && c.ColumnType == "bit(1)":
				p.kinds[i] = "BIT(1)"
			case c.JSON && strings.HasSuffix(t, "TEXT"):
				p.kinds[i] = "JSON"
			}
		}
	}
	return p, nil
}

// appendMySQL types a MySQL text value by its column type name (or
// newPlan's refinement of it), as mysql_cdc types the same value.
func appendMySQL(dst []byte, typ string, v []byte, decimalAsNumber bool) []byte {
	switch typ {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT",
		"UNSIGNED INT", "UNSIGNED BIGINT":
		return cdc.AppendNumberText(dst, v)
	case "FLOAT", "DOUBLE":
		// A FLOAT arrives as a DOUBLE (myPlan.floats): written as the
		// float32 it is, in its shortest form.
		bits := 64
		if typ == "FLOAT" {
			bits = 32
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return cdc.AppendFloat(dst, f, bits)
		}
		return cdc.AppendNumberText(dst, v)
	case "YEAR":
		if y, err := strconv.Atoi(string(v)); err == nil {
			return strconv.AppendInt(dst, int64(y), 10)
		}
		return cdc.AppendString(dst, v)
	case "DECIMAL":
		return cdc.AppendDecimal(dst, v, decimalAsNumber)
	case "DATE":
		if isZeroDate(v) {
			return cdc.AppendNull(dst)
		}
	case "DATETIME", "TIMESTAMP":
		// Zero dates are not dates: null, as mysql_cdc writes them.
		if isZeroDate(v) {
			return cdc.AppendNull(dst)
		}
		// "2026-01-02 03:04:05[.ffffff]" in UTC (the session's zone).
		if len(v) >= 19 && v[10] == ' ' {
			dst = append(dst, '"')
			dst = append(dst, v[:10]...)
			dst = append(dst, 'T')
			dst = append(dst, v[11:]...)
			return append(dst, 'Z', '"')
		}
	case "BIT", "BIT(1)":
		var x uint64
		for _, ch := range v {
			x = x<<8 | uint64(ch)
		}
		if typ == "BIT(1)" {
			return cdc.AppendBool(dst, x != 0)
		}
		return cdc.AppendUint(dst, x)
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "GEOMETRY":
		return cdc.AppendBytes(dst, v)
	case "JSON":
		return cdc.AppendJSON(dst, v)
	}
	return cdc.AppendString(dst, v)
}

func isZeroDate(v []byte) bool {
	return len(v) >= 10 && string(v[:10]) == "0000-00-00"
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
