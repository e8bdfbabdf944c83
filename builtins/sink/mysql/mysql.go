// Package mysql is the mysql sink: rows into a MariaDB or MySQL table,
// inserted, upserted (ON DUPLICATE KEY UPDATE) or applied from change
// events, each batch in one transaction through multi-row statements.
package mysql

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/sqlsink"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Name is the component name.
const Name = "mysql"

// maxPlaceholders bounds one statement (the protocol allows 65535); rows
// are also split so that a statement stays well under max_allowed_packet.
const (
	maxPlaceholders = 60000
	maxStmtBytes    = 4 << 20
)

// Register adds the mysql sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    Name,
		Summary: "Write rows to a MariaDB or MySQL table: insert, upsert (ON DUPLICATE KEY UPDATE) or apply change events",
		Description: "Maps each record to a row through JSONPaths (or a change event's after image in mode cdc) and writes " +
			"each batch in one transaction with multi-row statements. A row the database rejects (a duplicate key in insert " +
			"mode, a constraint, a bad value, a row longer than max_allowed_packet) goes to the dead-letter queue alone, with the database's message; a lost " +
			"connection is retried. See docs/connectors/mysql.md.",
		Example: `[sink]
type = "mysql"
dsn = "writer@tcp(db.example:3306)/shop"
password = "${env:MYSQL_PASSWORD}"
table = "orders"
mode = "cdc"
`,
		New: func() any { return sqlsink.NewConfig() },
		Build: func(c any, env component.Env) (any, error) {
			cfg := c.(*sqlsink.Config)
			d := &dialect{cfg: cfg}
			if cfg.TLS != nil {
				tc, err := cfg.TLS.Config(env.Dir)
				if err != nil {
					env.Problems.Addf([]string{"tls"}, "%v", err)
					return nil, nil
				}
				d.tls = tc
			}
			if _, err := d.config(); err != nil {
				env.Problems.Addf([]string{"dsn"}, "%v", err)
				return nil, nil
			}
			return sqlsink.New(cfg, d, env.Logger, "mysql sink"), nil
		},
	})
}

type dialect struct {
	cfg   *sqlsink.Config
	tls   *tls.Config
	db    *sql.DB
	where string
	table string // quoted, qualified
	// maxPacket is the server's max_allowed_packet, read at Connect: no
	// statement longer is sent. The server refuses a longer packet with
	// error 1153 and closes the connection (or resets it while the client
	// is still writing, when the packet is much longer, which the client
	// sees as a lost connection, not as 1153).
	maxPacket int
}

func (d *dialect) config() (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(d.cfg.DSN.Reveal())
	if err != nil {
		// The parse errors quote parts of the DSN: keep them out.
		return nil, errors.New("cannot parse the connection string (want user@tcp(host:3306)/db?param=value)")
	}
	if d.cfg.Password != "" {
		mc.Passwd = d.cfg.Password.Reveal()
	}
	if d.tls != nil {
		mc.TLS = d.tls.Clone()
		if mc.TLS.ServerName == "" {
			mc.TLS.ServerName, _, _ = strings.Cut(mc.Addr, ":")
		}
	}
	// One round trip per statement instead of prepare, execute, close.
	mc.InterpolateParams = true
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	// DATETIME and TIMESTAMP values are written in UTC.
	if _, ok := mc.Params["time_zone"]; !ok {
		mc.Params["time_zone"] = "'+00:00'"
	}
	if mc.Timeout == 0 {
		mc.Timeout = 10 * time.Second
	}
	d.where = fmt.Sprintf("%s/%s as %s", mc.Addr, mc.DBName, mc.User)
	return mc, nil
}

func (d *dialect) Connect(ctx context.Context) error {
	mc, err := d.config()
	if err != nil {
		return component.TaskPermanent(err)
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("mysql sink %s: %v", d.where, err))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(d.cfg.MaxConns)
	db.SetMaxIdleConns(d.cfg.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return d.Classify(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&d.maxPacket); err != nil {
		db.Close()
		return d.Classify(err)
	}
	d.db = db
	return nil
}

func (d *dialect) Close() {
	if d.db != nil {
		d.db.Close()
	}
}

func quote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (d *dialect) Describe(ctx context.Context, schema, table string) ([]sqlsink.Column, []string, error) {
	if schema == "" {
		if err := d.db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil || schema == "" {
			if err != nil {
				return nil, nil, d.Classify(err)
			}
			return nil, nil, component.TaskPermanent(fmt.Errorf("mysql sink %s: no database selected: name it in dsn (user@tcp(host:3306)/db) or in table (db.table)", d.where))
		}
	}
	d.table = quote(schema) + "." + quote(table)
	rows, err := d.db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, nil, d.Classify(err)
	}
	defer rows.Close()
	var cols []sqlsink.Column
	for rows.Next() {
		var name, dt, ct, extra string
		if err := rows.Scan(&name, &dt, &ct, &extra); err != nil {
			return nil, nil, d.Classify(err)
		}
		ex := strings.ToUpper(extra)
		if strings.Contains(ex, "GENERATED") || strings.Contains(ex, "VIRTUAL") || strings.Contains(ex, "PERSISTENT") || strings.Contains(ex, "STORED") {
			continue
		}
		c := sqlsink.Column{Name: name, Type: ct}
		switch strings.ToLower(dt) {
		case "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary":
			c.Kind = sqlsink.KindBytes
		case "datetime", "timestamp":
			c.Kind = sqlsink.KindTime
		case "json":
			c.Kind = sqlsink.KindJSON
		case "tinyint", "bit":
			if strings.HasPrefix(strings.ToLower(ct), "tinyint(1)") || strings.ToLower(ct) == "bit(1)" {
				c.Kind = sqlsink.KindBool
			} else if strings.ToLower(dt) == "bit" {
				c.Kind = sqlsink.KindBits
			}
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, d.Classify(err)
	}
	if len(cols) == 0 {
		return nil, nil, component.TaskPermanent(fmt.Errorf("mysql sink %s: table %s.%s does not exist: create it or fix table", d.where, schema, table))
	}
	// MariaDB's JSON is LONGTEXT checked by json_valid(col) (as mysql_cdc
	// finds it). MySQL before 8.0.16 has no CHECK_CONSTRAINTS, and no such
	// columns.
	if checks, err := d.db.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, schema, table); err == nil {
		defer checks.Close()
		for checks.Next() {
			var clause string
			if err := checks.Scan(&clause); err != nil {
				return nil, nil, d.Classify(err)
			}
			for i := range cols {
				if cols[i].Kind == sqlsink.KindText && strings.HasSuffix(strings.ToLower(cols[i].Type), "longtext") &&
					strings.EqualFold(clause, "json_valid("+quote(cols[i].Name)+")") {
					cols[i].Kind = sqlsink.KindJSON
				}
			}
		}
		if err := checks.Err(); err != nil {
			return nil, nil, d.Classify(err)
		}
	}
	krows, err := d.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, nil, d.Classify(err)
	}
	defer krows.Close()
	var pk []string
	for krows.Next() {
		var k string
		if err := krows.Scan(&k); err != nil {
			return nil, nil, d.Classify(err)
		}
		pk = append(pk, k)
	}
	return cols, pk, krows.Err()
}

// Convert turns a JSON value into the column's input.
func (d *dialect) Convert(c *sqlsink.Column, tok []byte, dst []byte) (sqlsink.Value, []byte, error) {
	if string(tok) == "null" {
		return sqlsink.Value{Null: true}, dst, nil
	}
	from := len(dst)
	switch c.Kind {
	case sqlsink.KindBytes:
		if tok[0] != '"' {
			return sqlsink.Value{}, dst, fmt.Errorf("want a base64 string for %s, got %s", c.Type, jsonscan.KindOf(tok[0]))
		}
		raw, ok := jsonscan.StringContent(tok)
		if !ok {
			return sqlsink.Value{}, dst, errors.New("base64 with escapes")
		}
		n := base64.StdEncoding.DecodedLen(len(raw))
		dst = append(dst, make([]byte, n)...)
		m, err := base64.StdEncoding.Decode(dst[from:], raw)
		if err != nil {
			return sqlsink.Value{}, dst[:from], fmt.Errorf("not base64: %v", err)
		}
		dst = dst[:from+m]
	case sqlsink.KindTime:
		var ok bool
		if dst, ok = sqlsink.JSONText(tok, dst); !ok {
			return sqlsink.Value{}, dst[:from], errors.New("invalid JSON string")
		}
		// RFC 3339 (as the CDC sources write) becomes a UTC DATETIME
		// literal.
		dst = sqlsink.AppendUTCDigits(dst, from)
	case sqlsink.KindJSON:
		// The JSON value itself: a string stays a JSON string (its
		// content would be other JSON, or none).
		dst = append(dst, tok...)
	case sqlsink.KindBits:
		// A BIT(n) value is a number (mysql_cdc and the sql source write
		// it so); exec sends it as one: a string is taken as its bytes.
		switch string(tok) {
		case "true":
			return sqlsink.Value{Text: one}, dst, nil
		case "false":
			return sqlsink.Value{Text: zero}, dst, nil
		}
		if _, err := strconv.ParseUint(string(tok), 10, 64); err != nil {
			return sqlsink.Value{}, dst, fmt.Errorf("want a number from 0 to 18446744073709551615 for %s, got %.40s", c.Type, tok)
		}
		dst = append(dst, tok...)
	case sqlsink.KindBool:
		switch string(tok) {
		case "true":
			return sqlsink.Value{Text: one}, dst, nil
		case "false":
			return sqlsink.Value{Text: zero}, dst, nil
		}
		fallthrough
	default:
		var ok bool
		if dst, ok = sqlsink.JSONText(tok, dst); !ok {
			return sqlsink.Value{}, dst[:from], errors.New("invalid JSON string")
		}
	}
	if len(dst) == from {
		return sqlsink.Value{Text: []byte{}}, dst, nil
	}
	return sqlsink.Value{Text: dst[from:]}, dst, nil
}

var one, zero = []byte("1"), []byte("0")

// statements returns the SQL heads of a group: the statement up to VALUES
// (or IN), the row placeholder and the tail.
func (d *dialect) statement(p *sqlsink.Plan, g *sqlsink.Group) (head, row, tail string) {
	cols := make([]string, len(g.Cols))
	ph := make([]string, len(g.Cols))
	for i, c := range g.Cols {
		cols[i] = quote(p.Columns[c].Name)
		ph[i] = "?"
	}
	row = "(" + strings.Join(ph, ",") + ")"
	if g.Delete {
		return "DELETE FROM " + d.table + " WHERE (" + strings.Join(cols, ", ") + ") IN (", row, ")"
	}
	if p.Mode != sqlsink.ModeInsert {
		var sets []string
		for _, c := range g.Cols {
			if !isKey(p.Key, c) {
				n := quote(p.Columns[c].Name)
				sets = append(sets, n+" = VALUES("+n+")")
			}
		}
		if len(sets) == 0 {
			k := quote(p.Columns[p.Key[0]].Name)
			sets = append(sets, k+" = "+k)
		}
		tail = " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
	}
	return "INSERT INTO " + d.table + " (" + strings.Join(cols, ", ") + ") VALUES ", row, tail
}

func isKey(key []int, c int) bool {
	for _, k := range key {
		if k == c {
			return true
		}
	}
	return false
}

// packetError is a row whose statement alone is longer than the server's
// max_allowed_packet: it is not sent.
type packetError struct{ size, limit int }

func (e *packetError) Error() string {
	return fmt.Sprintf("the row's INSERT is %d bytes, over the server's max_allowed_packet (%d bytes): "+
		"raise max_allowed_packet on the server (SET GLOBAL max_allowed_packet = ..., or in its configuration file; "+
		"the sink reads it when it connects)", e.size, e.limit)
}

// exec writes a group with as few statements as the limits allow: at most
// maxPlaceholders placeholders, about maxStmtBytes, and never longer than
// the server's max_allowed_packet. A row too long alone is a packetError,
// before anything of the group is sent.
func (d *dialect) exec(ctx context.Context, tx *sql.Tx, p *sqlsink.Plan, g *sqlsink.Group) error {
	head, row, tail := d.statement(p, g)
	// The packet: the command byte and the statement, each ? replaced by
	// its quoted value.
	fixed := 1 + len(head) + len(row) - len(g.Cols) + len(tail)
	limit := d.maxPacket
	if limit <= 0 {
		limit = 1 << 30 // the protocol's most
	}
	sizes := make([]int, len(g.Rows))
	for i, r := range g.Rows {
		sizes[i] = fixed
		for _, c := range g.Cols {
			sizes[i] += valueLen(r.Vals[c], p.Columns[c].Kind == sqlsink.KindBytes)
		}
		if sizes[i] > limit {
			return &packetError{size: sizes[i] - 1, limit: limit}
		}
	}
	var sb strings.Builder
	args := make([]any, 0, len(g.Rows)*len(g.Cols))
	size := 0
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		sb.WriteString(tail)
		_, err := tx.ExecContext(ctx, sb.String(), args...)
		sb.Reset()
		args = args[:0]
		size = 0
		return err
	}
	for i, r := range g.Rows {
		// A row adds its values and a comma to the statement.
		add := sizes[i] - fixed + len(row) - len(g.Cols) + 1
		if len(args) > 0 && (len(args)+len(g.Cols) > maxPlaceholders || size > maxStmtBytes || size+add > limit) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(args) == 0 {
			sb.WriteString(head)
			size = sizes[i]
		} else {
			sb.WriteByte(',')
			size += add
		}
		sb.WriteString(row)
		for _, c := range g.Cols {
			v := r.Vals[c]
			switch {
			case v.Null:
				args = append(args, nil)
			case p.Columns[c].Kind == sqlsink.KindBytes:
				args = append(args, v.Text)
			case p.Columns[c].Kind == sqlsink.KindBool || p.Columns[c].Kind == sqlsink.KindBits:
				// As a number: a BIT column takes a string as its
				// bytes ('1' is 0x31, too long for BIT(1); '0' into
				// BIT(8) is 48).
				if n, err := strconv.ParseUint(string(v.Text), 10, 64); err == nil {
					args = append(args, n)
				} else {
					args = append(args, string(v.Text))
				}
			default:
				args = append(args, string(v.Text))
			}
		}
	}
	return flush()
}

// valueLen is the length of v in the statement once the driver has
// interpolated it: NULL, or quoted ('...', _binary'...') with backslash
// escapes. Under NO_BACKSLASH_ESCAPES, where only quotes are doubled, it
// is an upper bound.
func valueLen(v sqlsink.Value, binary bool) int {
	if v.Null {
		return len("NULL")
	}
	n := len(v.Text) + 2
	if binary {
		n += len("_binary")
	}
	for _, c := range v.Text {
		if escaped[c] {
			n++
		}
	}
	return n
}

// escaped are the bytes the driver escapes with a backslash.
var escaped = [256]bool{0: true, '\n': true, '\r': true, 0x1a: true, '\'': true, '"': true, '\\': true}

func (d *dialect) Apply(ctx context.Context, p *sqlsink.Plan) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, g := range p.Groups() {
		if err := d.exec(ctx, tx, p, &g); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (d *dialect) ApplyEach(ctx context.Context, p *sqlsink.Plan) ([]error, error) {
	rowErrs := make([]error, len(p.Rows))
	for {
		again, err := d.applyEach(ctx, p, rowErrs)
		if !again {
			return rowErrs, err
		}
		// A row's packet was too long for the server, which closed the
		// connection and rolled back what it held: write the rows again
		// without it on another connection (database/sql drops the
		// closed one). Each round leaves one more row out.
	}
}

// applyEach writes the rows that have no error yet, each behind a
// savepoint, and records the errors of those that fail. again: a row's
// error took the transaction with it (packetTooLong), the rows must be
// written again.
func (d *dialect) applyEach(ctx context.Context, p *sqlsink.Plan, rowErrs []error) (again bool, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	for i, r := range p.Rows {
		if rowErrs[i] != nil {
			continue
		}
		g := p.RowGroup(r)
		if _, err := tx.ExecContext(ctx, "SAVEPOINT sluice_row"); err != nil {
			tx.Rollback()
			return false, err
		}
		if err := d.exec(ctx, tx, p, &g); err != nil {
			if component.ClassOf(d.Classify(err)) != component.ClassEventPermanent {
				tx.Rollback()
				return false, err
			}
			rowErrs[i] = err
			if packetTooLong(err) {
				tx.Rollback()
				return true, nil
			}
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sluice_row"); err != nil {
				tx.Rollback()
				return false, err
			}
		}
	}
	return false, tx.Commit()
}

// packetTooLong reports whether the server refused a packet longer than
// its max_allowed_packet (error 1153), after which it closes the
// connection.
func packetTooLong(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erNetPacketTooLarge
}

const erNetPacketTooLarge = 1153

// Error numbers by what they mean for the record.
var (
	eventErrors = map[uint16]bool{
		1048: true, 1062: true, 1264: true, 1265: true, 1292: true, 1364: true, 1366: true, 1367: true, 1406: true,
		1411: true, 1451: true, 1452: true, 1690: true, 3140: true, 3819: true, 4025: true, 1416: true, 1586: true,
	}
	taskErrors = map[uint16]bool{
		1044: true, 1045: true, 1049: true, 1054: true, 1064: true, 1136: true, 1142: true, 1143: true, 1146: true,
		1227: true, 1370: true, 1698: true, 1290: true,
	}
)

// Classify sorts errors by server error number: constraint and value errors
// are the record's, privilege and schema errors the task's, the rest
// (connections, deadlocks, lock waits, a server going away) retryable.
func (d *dialect) Classify(err error) error {
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		msg := fmt.Errorf("mysql sink %s: %s (error %d)", d.where, me.Message, me.Number)
		switch {
		case me.Number == erNetPacketTooLarge:
			// The row is too long for the server (the sink's own check,
			// packetError, missed it: max_allowed_packet was lowered
			// after the sink connected). Alone, it is the record's.
			return component.EventPermanent(fmt.Errorf("%w: raise max_allowed_packet on the server", msg))
		case eventErrors[me.Number]:
			return component.EventPermanent(msg)
		case me.Number == 1045 || me.Number == 1698:
			return component.TaskPermanent(fmt.Errorf("mysql sink %s: %s (error %d): check the password (the password key or the DSN)", d.where, me.Message, me.Number))
		case taskErrors[me.Number]:
			return component.TaskPermanent(msg)
		}
		return component.Retryable(msg, 0)
	}
	var pe *packetError
	if errors.As(err, &pe) {
		return component.EventPermanent(fmt.Errorf("mysql sink %s: %w", d.where, err))
	}
	if errors.Is(err, mysql.ErrPktTooLarge) {
		// The driver's own limit (the DSN's maxAllowedPacket, 64 MiB by
		// default) refused the packet before sending it.
		return component.EventPermanent(fmt.Errorf("mysql sink %s: the row's INSERT is longer than the driver's maxAllowedPacket: "+
			"raise maxAllowedPacket in dsn (or set it to 0 to take the server's max_allowed_packet): %w", d.where, err))
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return component.Retryable(fmt.Errorf("mysql sink %s: connection lost: %w", d.where, err), 0)
	}
	return component.Retryable(fmt.Errorf("mysql sink %s: %w", d.where, err), 0)
}
