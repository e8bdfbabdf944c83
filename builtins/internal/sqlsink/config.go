// Package sqlsink is what the SQL table sinks (postgres, mysql) share: the
// config, the column mapping from JSONPaths or a change event's after
// image, the insert, upsert and cdc modes, multi-row batches in one
// transaction and the isolation of a failing row. A Dialect supplies the
// database's catalog, statements and error classes.
package sqlsink

import (
	"strings"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Modes.
const (
	ModeInsert = "insert"
	ModeUpsert = "upsert"
	ModeCDC    = "cdc"
)

// Config is the [sink] table of the SQL sinks.
type Config struct {
	DSN      component.Secret  `toml:"dsn" required:"true" doc:"Connection string in the driver's own form (see the connector's page). Treated as a secret (never logged): put a password in it through ${env:...}, or in password."`
	Password component.Secret  `toml:"password" doc:"Password, overriding the DSN's. Use ${env:NAME}."`
	Table    string            `toml:"table" required:"true" doc:"Table to write, as table or schema.table."`
	Mode     string            `toml:"mode" enum:"insert,upsert,cdc" doc:"insert: plain INSERTs (a duplicate key is an error, the record goes to the dead-letter queue). upsert: insert or update on the key columns. cdc: apply change events (data.op): c, u and r upsert, d deletes."`
	Key      []string          `toml:"key" doc:"Key columns for upsert and cdc (default: the table's primary key)."`
	Columns  map[string]string `toml:"columns" doc:"Column name -> JSONPath into the record's payload. Default: every column of the table, from $.data.<column> (insert, upsert) or the change event's $.data.after.<column> (cdc). A path that finds nothing leaves the column out of the statement (its default on insert, its stored value on update); JSON null writes NULL."`
	OpPath   string            `toml:"op_path" doc:"cdc mode: JSONPath of the op (c, u, d, r)."`
	MaxConns int               `toml:"max_conns" min:"1" max:"256" doc:"Most connections in the pool (the task's workers write concurrently)."`
	TLS      *tlsconf.Client   `toml:"tls" doc:"TLS settings, overriding the DSN's."`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{Mode: ModeInsert, OpPath: "$.data.op", MaxConns: 4}
}

// Validate checks what needs no connection.
func (c *Config) Validate(p *component.Problems) {
	for col, path := range c.Columns {
		if _, err := jsonpath.Parse(path); err != nil {
			if pe, ok := err.(*jsonpath.Error); ok {
				p.AddAt([]string{"columns", col}, pe.Offset, "%s", pe.Msg)
			} else {
				p.Addf([]string{"columns", col}, "%v", err)
			}
		}
		if col == "" {
			p.KeyErrorf([]string{"columns"}, "empty column name")
		}
	}
	if c.Mode == ModeCDC {
		if _, err := jsonpath.Parse(c.OpPath); err != nil {
			p.Addf([]string{"op_path"}, "%v", err)
		}
	}
	if c.Mode == ModeInsert && len(c.Key) > 0 {
		p.KeyErrorf([]string{"key"}, "key is for mode = \"upsert\" or \"cdc\"; insert mode does not use it")
	}
	if c.Table == "" || strings.Count(c.Table, ".") > 1 {
		p.Addf([]string{"table"}, "want table or schema.table")
	}
}

// SplitTable splits "schema.table" into its parts ("" schema: none given).
func SplitTable(s string) (schema, table string) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}
