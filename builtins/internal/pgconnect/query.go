package pgconnect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// Row is one row of a query's result: each column's value in PostgreSQL's
// text output format, nil for NULL.
type Row [][]byte

// ErrNoRows is QueryRow's error for a query that returned no row.
var ErrNoRows = errors.New("no rows in result set")

// Query runs sql, a single statement, with params in the text format (nil
// is NULL; the server infers each parameter's type from the statement) and
// returns its rows, copied out of the connection's buffer.
func Query(ctx context.Context, c *pgconn.PgConn, sql string, params ...[]byte) ([]Row, error) {
	res := c.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	rows := make([]Row, len(res.Rows))
	for i, r := range res.Rows {
		rows[i] = r
	}
	return rows, nil
}

// QueryRow is Query for the first row: ErrNoRows when there is none.
func QueryRow(ctx context.Context, c *pgconn.PgConn, sql string, params ...[]byte) (Row, error) {
	rows, err := Query(ctx, c, sql, params...)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, ErrNoRows
	}
	return rows[0], nil
}

// Exec runs sql, one statement or several, without parameters (the simple
// query protocol, as transaction control and DDL need no more) and returns
// the last statement's command tag.
func Exec(ctx context.Context, c *pgconn.PgConn, sql string) (pgconn.CommandTag, error) {
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if len(res) == 0 {
		return pgconn.CommandTag{}, nil
	}
	return res[len(res)-1].CommandTag, nil
}

// The decoders below read the text output of the catalog's types. A value
// they cannot read means the server sent something unexpected: the error
// quotes it (catalog values are names and numbers, never secrets).

// Bool reads a boolean: t or f.
func Bool(v []byte) (bool, error) {
	switch string(v) {
	case "t":
		return true, nil
	case "f":
		return false, nil
	}
	return false, fmt.Errorf("want a boolean (t or f), got %q", v)
}

// Int32 reads an int2 or int4.
func Int32(v []byte) (int32, error) {
	n, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want a 32-bit integer, got %q", v)
	}
	return int32(n), nil
}

// Uint32 reads an oid.
func Uint32(v []byte) (uint32, error) {
	n, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want an oid, got %q", v)
	}
	return uint32(n), nil
}

// Strings reads a JSON array of strings, as json_agg of text values prints
// it. The catalog queries return lists of names this way rather than as a
// text[], whose literal (quoting that depends on the content, NULL, bounds
// decorations) would need a parser of its own: JSON's escaping is
// unambiguous and encoding/json is in the binary anyway.
func Strings(v []byte) ([]string, error) {
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("want a JSON array of strings, got %q", v)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
