// Package postgres is the postgres sink: rows into a PostgreSQL table,
// inserted, upserted (ON CONFLICT) or applied from change events, each
// batch in one transaction through one multi-row statement per kind of
// row (unnest of one text array per column).
package postgres

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/builtins/internal/sqlsink"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Name is the component name.
const Name = "postgres"

// Register adds the postgres sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    Name,
		Summary: "Write rows to a PostgreSQL table: insert, upsert (ON CONFLICT) or apply change events",
		Description: "Maps each record to a row through JSONPaths (or a change event's after image in mode cdc) and writes " +
			"each batch in one transaction, with one multi-row statement per kind of row. A row the database rejects " +
			"(a constraint violation, a bad value, a trigger's exception, an index row too large) goes to the dead-letter queue alone, with the database's message; " +
			"a lost connection is retried. See docs/connectors/postgres.md.",
		Example: `[sink]
type = "postgres"
dsn = "postgres://writer@db.example:5432/shop?sslmode=verify-full"
password = "${env:PG_PASSWORD}"
table = "public.orders"
mode = "upsert"
key = ["id"]
columns = { id = "$.data.id", region = "$.data.region", amount = "$.data.amount" }
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
			if _, err := d.connConfig(); err != nil {
				env.Problems.Addf([]string{"dsn"}, "%v", err)
				return nil, nil
			}
			return sqlsink.New(cfg, d, env.Logger, "postgres sink"), nil
		},
	})
}

type dialect struct {
	cfg   *sqlsink.Config
	tls   *tls.Config
	pool  *pool
	where string
	table string // quoted, qualified

	mu    sync.Mutex
	stmts map[string]string // group signature -> SQL
}

func (d *dialect) connConfig() (*pgconn.Config, error) {
	cc, err := pgconnect.Config(pgconnect.Settings{DSN: d.cfg.DSN.Reveal(), Password: d.cfg.Password.Reveal(), TLS: d.tls})
	if err != nil {
		return nil, err
	}
	d.where = pgconnect.Where(cc)
	return cc, nil
}

func (d *dialect) Connect(ctx context.Context) error {
	cc, err := d.connConfig()
	if err != nil {
		return component.TaskPermanent(err)
	}
	pool := newPool(d.cfg.MaxConns, func(ctx context.Context) (*pgconn.PgConn, error) { return pgconn.ConnectConfig(ctx, cc) })
	if err := pool.run(ctx, func(c *pgconn.PgConn) error { return c.Ping(ctx) }); err != nil {
		pool.close()
		return d.classifyConnect(err)
	}
	d.pool = pool
	d.stmts = map[string]string{}
	return nil
}

func (d *dialect) classifyConnect(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return component.TaskPermanent(fmt.Errorf("postgres sink %s: authentication failed (%s): check the password (the password key, the DSN or PGPASSWORD)", d.where, pe.Message))
		case pe.Code == "3D000":
			return component.TaskPermanent(fmt.Errorf("postgres sink %s: the database does not exist: fix dsn", d.where))
		case strings.HasPrefix(pe.Code, "28") || strings.HasPrefix(pe.Code, "42"):
			return component.TaskPermanent(fmt.Errorf("postgres sink %s: %s (SQLSTATE %s)", d.where, pe.Message, pe.Code))
		}
	}
	return component.Retryable(fmt.Errorf("postgres sink %s: cannot connect: %w", d.where, err), 0)
}

func (d *dialect) Close() {
	if d.pool != nil {
		d.pool.close()
	}
}

func (d *dialect) Describe(ctx context.Context, schema, table string) (cols []sqlsink.Column, pk []string, err error) {
	err = d.pool.run(ctx, func(c *pgconn.PgConn) (err error) {
		cols, pk, err = d.describe(ctx, c, schema, table)
		return err
	})
	if errors.Is(err, pgconnect.ErrNoRows) {
		return nil, nil, component.TaskPermanent(fmt.Errorf("postgres sink %s: table %s does not exist: create it or fix table", d.where, d.cfg.Table))
	}
	if err != nil {
		return nil, nil, d.Classify(err)
	}
	return cols, pk, nil
}

// describe reads the table's columns and key on c; ErrNoRows when the
// table does not exist.
func (d *dialect) describe(ctx context.Context, conn *pgconn.PgConn, schema, table string) ([]sqlsink.Column, []string, error) {
	var sc []byte // NULL: the first schema of the search path that has the table
	if schema != "" {
		sc = []byte(schema)
	}
	row, err := pgconnect.QueryRow(ctx, conn, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $2 AND c.relkind IN ('r', 'p') AND ($1::text IS NULL AND n.oid = ANY (current_schemas(false)::regnamespace[]) OR n.nspname = $1)
ORDER BY array_position(current_schemas(false), n.nspname::text) LIMIT 1`, sc, []byte(table))
	if err != nil {
		return nil, nil, err
	}
	resolved := string(row[0])
	d.table = pgconnect.Ident(resolved, table)
	// The cast name is the type's quoted name, which, unlike format_type
	// without a modifier, never takes the SQL standard's default length
	// (bit and character alone are bit(1) and character(1)).
	rows, err := pgconnect.Query(ctx, conn, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, t.typcategory::text,
format('%I.%I', tn.nspname, t.typname)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum`, []byte(resolved), []byte(table))
	if err != nil {
		return nil, nil, err
	}
	var cols []sqlsink.Column
	for _, r := range rows {
		c := sqlsink.Column{Name: string(r[0]), Type: string(r[1]), Cast: string(r[4])}
		typname, cat := string(r[2]), string(r[3])
		switch {
		case typname == "bytea":
			c.Kind = sqlsink.KindBytes
		case cat == "A":
			c.Kind = sqlsink.KindArray
		case typname == "json" || typname == "jsonb":
			c.Kind = sqlsink.KindJSON
		case typname == "timestamp":
			c.Kind = sqlsink.KindTime
		}
		cols = append(cols, c)
	}
	// The key's names come as JSON (pgconnect.Strings says why).
	row, err = pgconnect.QueryRow(ctx, conn, `SELECT coalesce((SELECT json_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = $1::regclass AND i.indisprimary), '[]')::text`, []byte(d.table))
	if err != nil {
		return nil, nil, err
	}
	pk, err := pgconnect.Strings(row[0])
	if err != nil {
		return nil, nil, fmt.Errorf("reading the primary key of %s: %w", d.table, err)
	}
	return cols, pk, nil
}

// Convert turns a JSON value into the column's text input.
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
		tmp := make([]byte, n)
		m, err := base64.StdEncoding.Decode(tmp, raw)
		if err != nil {
			return sqlsink.Value{}, dst, fmt.Errorf("not base64: %v", err)
		}
		dst = append(dst, '\\', 'x')
		dst = hex.AppendEncode(dst, tmp[:m])
	case sqlsink.KindArray:
		if tok[0] == '[' {
			var ok bool
			if dst, ok = appendArrayLiteral(dst, tok); !ok {
				return sqlsink.Value{}, dst[:from], errors.New("invalid JSON array")
			}
			break
		}
		var ok bool
		if dst, ok = sqlsink.JSONText(tok, dst); !ok {
			return sqlsink.Value{}, dst[:from], errors.New("invalid JSON string")
		}
	case sqlsink.KindJSON:
		dst = append(dst, tok...)
	case sqlsink.KindTime:
		var ok bool
		if dst, ok = sqlsink.JSONText(tok, dst); !ok {
			return sqlsink.Value{}, dst[:from], errors.New("invalid JSON string")
		}
		// PostgreSQL's input of a timestamp without time zone ignores an
		// offset, which shifted the value by it.
		dst = sqlsink.AppendUTCDigits(dst, from)
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

// appendArrayLiteral writes a JSON array as a PostgreSQL array literal:
// strings quoted and escaped, null as NULL, nested arrays as dimensions,
// objects as their JSON text.
func appendArrayLiteral(dst, tok []byte) ([]byte, bool) {
	els := jsonscan.ElementsOf(tok, 0)
	dst = append(dst, '{')
	n := 0
	for els.Next() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		vs, ve := els.Value()
		v := tok[vs:ve]
		switch jsonscan.KindOf(v[0]) {
		case jsonscan.Null:
			dst = append(dst, "NULL"...)
		case jsonscan.Array:
			var ok bool
			if dst, ok = appendArrayLiteral(dst, v); !ok {
				return dst, false
			}
		case jsonscan.String:
			s, ok := jsonscan.AppendString(nil, v)
			if !ok {
				return dst, false
			}
			dst = appendQuotedElem(dst, s)
		case jsonscan.Object:
			dst = appendQuotedElem(dst, v)
		default:
			dst = append(dst, v...)
		}
	}
	if els.Err() {
		return dst, false
	}
	return append(dst, '}'), true
}

func appendQuotedElem(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// statement returns the SQL of a group (cached by its shape).
func (d *dialect) statement(p *sqlsink.Plan, g *sqlsink.Group) string {
	var sig strings.Builder
	if g.Delete {
		sig.WriteByte('d')
	} else {
		sig.WriteString(p.Mode)
	}
	for _, c := range g.Cols {
		sig.WriteByte(',')
		sig.WriteString(strconv.Itoa(c))
	}
	key := sig.String()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.stmts[key]; ok {
		return s
	}
	var b strings.Builder
	sel := func() {
		// Each column's values arrive as one array literal in the text
		// format, parsed by the column type's own input function; array
		// columns come as text[] (unnest would flatten them) and are cast.
		// The casts leave out the column's modifier: the INSERT applies
		// it, refusing a value too long where a cast would cut it.
		b.WriteString("SELECT ")
		for i, c := range g.Cols {
			if i > 0 {
				b.WriteString(", ")
			}
			if p.Columns[c].Kind == sqlsink.KindArray {
				fmt.Fprintf(&b, "u.v%d::%s", i, p.Columns[c].Cast)
			} else {
				fmt.Fprintf(&b, "u.v%d", i)
			}
		}
		b.WriteString(" FROM unnest(")
		for i, c := range g.Cols {
			if i > 0 {
				b.WriteString(", ")
			}
			if p.Columns[c].Kind == sqlsink.KindArray {
				fmt.Fprintf(&b, "$%d::text[]", i+1)
			} else {
				fmt.Fprintf(&b, "$%d::%s[]", i+1, p.Columns[c].Cast)
			}
		}
		b.WriteString(") AS u(")
		for i := range g.Cols {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "v%d", i)
		}
		b.WriteString(")")
	}
	if g.Delete {
		b.WriteString("DELETE FROM " + d.table + " WHERE (")
		for i, c := range g.Cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(p.Columns[c].Name))
		}
		b.WriteString(") IN (")
		sel()
		b.WriteString(")")
	} else {
		b.WriteString("INSERT INTO " + d.table + " (")
		for i, c := range g.Cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(p.Columns[c].Name))
		}
		b.WriteString(") ")
		sel()
		if p.Mode != sqlsink.ModeInsert {
			b.WriteString(" ON CONFLICT (")
			for i, k := range p.Key {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quote(p.Columns[k].Name))
			}
			b.WriteString(") DO ")
			var sets []string
			for _, c := range g.Cols {
				if !isKey(p.Key, c) {
					n := quote(p.Columns[c].Name)
					sets = append(sets, n+" = EXCLUDED."+n)
				}
			}
			if len(sets) == 0 {
				b.WriteString("NOTHING")
			} else {
				b.WriteString("UPDATE SET " + strings.Join(sets, ", "))
			}
		}
	}
	d.stmts[key] = b.String()
	return d.stmts[key]
}

func quote(s string) string { return pgconnect.Ident(s) }

func isKey(key []int, c int) bool {
	for _, k := range key {
		if k == c {
			return true
		}
	}
	return false
}

// params returns one array literal per column of the group, in the text
// format, written into buf (reused).
func params(g *sqlsink.Group, buf []byte) ([][]byte, []byte) {
	buf = buf[:0]
	offs := make([]int, 0, len(g.Cols)+1)
	for _, c := range g.Cols {
		offs = append(offs, len(buf))
		buf = append(buf, '{')
		for j, r := range g.Rows {
			if j > 0 {
				buf = append(buf, ',')
			}
			v := r.Vals[c]
			if v.Null {
				buf = append(buf, "NULL"...)
				continue
			}
			buf = appendQuotedElem(buf, v.Text)
		}
		buf = append(buf, '}')
	}
	offs = append(offs, len(buf))
	out := make([][]byte, len(g.Cols))
	for i := range out {
		out[i] = buf[offs[i]:offs[i+1]]
	}
	return out, buf
}

func (d *dialect) exec(ctx context.Context, c *pgconn.PgConn, p *sqlsink.Plan, g *sqlsink.Group, buf *[]byte) error {
	ps, b := params(g, *buf)
	*buf = b
	_, err := c.ExecParams(ctx, d.statement(p, g), ps, nil, nil, nil).Close()
	return err
}

func (d *dialect) Apply(ctx context.Context, p *sqlsink.Plan) error {
	var buf []byte
	return d.pool.tx(ctx, func(c *pgconn.PgConn) error {
		for _, g := range p.Groups() {
			if err := d.exec(ctx, c, p, &g, &buf); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *dialect) ApplyEach(ctx context.Context, p *sqlsink.Plan) ([]error, error) {
	rowErrs := make([]error, len(p.Rows))
	var buf []byte
	err := d.pool.tx(ctx, func(c *pgconn.PgConn) error {
		for i, r := range p.Rows {
			g := p.RowGroup(r)
			if _, err := pgconnect.Exec(ctx, c, "SAVEPOINT sluice_row"); err != nil {
				return err
			}
			if err := d.exec(ctx, c, p, &g, &buf); err != nil {
				if component.ClassOf(d.Classify(err)) != component.ClassEventPermanent {
					return err
				}
				rowErrs[i] = err
				if _, err := pgconnect.Exec(ctx, c, "ROLLBACK TO SAVEPOINT sluice_row"); err != nil {
					return err
				}
				continue
			}
			if _, err := pgconnect.Exec(ctx, c, "RELEASE SAVEPOINT sluice_row"); err != nil {
				return err
			}
		}
		return nil
	})
	return rowErrs, err
}

// Classify sorts errors by SQLSTATE (sqlstateClass; the table is in
// docs/connectors/postgres.md).
func (d *dialect) Classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := fmt.Errorf("postgres sink %s: %s (SQLSTATE %s%s)", d.where, pe.Message, pe.Code, detail(pe))
		switch sqlstateClass(pe.Code) {
		case component.ClassEventPermanent:
			return component.EventPermanent(msg)
		case component.ClassTaskPermanent:
			return component.TaskPermanent(msg)
		}
		return component.Retryable(msg, 0)
	}
	return component.Retryable(fmt.Errorf("postgres sink %s: %w", d.where, err), 0)
}

// sqlstateClass says what an SQLSTATE means for a batch.
//
// Event-permanent: the row's values make the statement fail, on every
// try. Write then applies the batch again row by row, each behind a
// savepoint, so the rows at fault go to the dead-letter queue alone:
//
//	09  triggered action exception
//	20  case not found (a PL/pgSQL CASE in a trigger, for this row's data)
//	21  cardinality violation: of a batch, one key in two spellings (row
//	    by row in record order, the last write wins, nothing is
//	    dead-lettered); of one row, a trigger's subquery returning rows
//	22  data exception (a bad value)
//	23  integrity constraint violation
//	27  triggered data change violation
//	2F  SQL routine exception (a function or trigger)
//	38  external routine exception
//	39  external routine invocation exception (a trigger's protocol)
//	44  WITH CHECK OPTION violation
//	54  program limit exceeded (an index row too large, a value nested
//	    too deep)
//	P0  PL/pgSQL: RAISE EXCEPTION in a trigger (P0001), no data found,
//	    too many rows, a failed ASSERT
//
// Task-permanent: the table, the role or the database is wrong, for every
// row: 42 (syntax, an unknown column, privileges), 28 (authorization),
// 3D000 (no such database), 25006 (a read-only transaction: a standby).
//
// Everything else is retryable, among them the transient ones: 08
// (connection), 40001 (serialization failure), 40P01 (deadlock), 53
// (insufficient resources: disk full, out of memory, too many
// connections), 55P03 (lock not available), 57 (a cancelled statement,
// an administrator's shutdown), 58 (system errors) and XX (internal).
func sqlstateClass(code string) component.Class {
	if len(code) < 2 {
		return component.ClassRetryable
	}
	switch code[:2] {
	case "09", "20", "21", "22", "23", "27", "2F", "38", "39", "44", "54", "P0":
		return component.ClassEventPermanent
	case "42", "28":
		return component.ClassTaskPermanent
	}
	switch code {
	case "3D000", "25006":
		return component.ClassTaskPermanent
	}
	return component.ClassRetryable
}

func detail(pe *pgconn.PgError) string {
	if pe.Detail == "" {
		return ""
	}
	return "; " + pe.Detail
}
