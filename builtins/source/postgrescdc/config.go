// Package postgrescdc is the postgres_cdc source: PostgreSQL change data
// capture through logical replication (pgoutput), with an optional
// consistent snapshot first. Events follow builtins/internal/cdc.
package postgrescdc

import (
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Name is the component name.
const Name = "postgres_cdc"

// EventType is the CloudEvents type of every event.
const EventType = "sluice.postgres_cdc.change"

// Config is the [source] table of type "postgres_cdc".
type Config struct {
	DSN             component.Secret   `toml:"dsn" required:"true" doc:"Connection string in libpq's forms (as pgx's pgconn reads them): a URL (postgres://user@host:5432/db?sslmode=verify-full) or key=value pairs. Treated as a secret (never logged): put a password in it through ${env:...}, or in password, or in PGPASSWORD."`
	Password        component.Secret   `toml:"password" doc:"Password, overriding the DSN's. Use ${env:NAME}."`
	Tables          []string           `toml:"tables" doc:"Tables to capture, as schema.table (a bare name means public.name). The publication is created over them when it does not exist."`
	Schema          string             `toml:"schema" doc:"Capture every table of this schema instead of a list (the publication is created FOR TABLES IN SCHEMA)."`
	Slot            string             `toml:"slot" required:"true" doc:"Name of the logical replication slot: created on first start, kept across restarts; it holds the position. Drop it (SELECT pg_drop_replication_slot('name')) when the task is retired, or it keeps WAL on the server."`
	Publication     string             `toml:"publication" doc:"Name of the publication to read (default: the slot's name). Used as it is when it exists; created over tables or schema when it does not."`
	Snapshot        bool               `toml:"snapshot" doc:"On first start, read every row of the tables (op r) from the slot's consistent snapshot before streaming changes."`
	SnapshotChunk   int                `toml:"snapshot_chunk" min:"1" max:"1000000" doc:"Rows per primary-key chunk of the snapshot; the snapshot's progress is checkpointed after each delivered chunk."`
	DecimalAsNumber bool               `toml:"decimal_as_number" doc:"Write numeric columns as JSON numbers instead of strings (readers that parse numbers as floats may lose digits)."`
	StatusInterval  component.Duration `toml:"status_interval" doc:"How often the confirmed position is reported to the server (the standby heartbeat). A kill -9 may redeliver the changes acknowledged within this interval."`
	Batch           Batch              `toml:"batch" doc:"How changes are grouped into batches for the engine."`
	TLS             *tlsconf.Client    `toml:"tls" doc:"TLS settings overriding the DSN's sslmode and certificates."`
}

// Batch bounds the batches handed to the engine.
type Batch struct {
	MaxEvents int `toml:"max_events" min:"1" max:"100000" doc:"Most changes in one batch."`
}

func newConfig() any {
	return &Config{
		Snapshot:       true,
		SnapshotChunk:  10000,
		StatusInterval: component.Duration(time.Second),
		Batch:          Batch{MaxEvents: 1000},
	}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// Validate checks the keys that need no connection.
func (c *Config) Validate(p *component.Problems) {
	if c.Slot != "" && !regexp.MustCompile(`^[a-z0-9_]{1,63}$`).MatchString(c.Slot) {
		p.Addf([]string{"slot"}, "invalid slot name %q: PostgreSQL allows lower-case letters, digits and underscores, at most 63", c.Slot)
	}
	if c.Publication != "" && !identRE.MatchString(c.Publication) {
		p.Addf([]string{"publication"}, "invalid publication name %q: use letters, digits and underscores", c.Publication)
	}
	if len(c.Tables) > 0 && c.Schema != "" {
		p.KeyErrorf([]string{"schema"}, "set tables or schema, not both")
	}
	for i, t := range c.Tables {
		if _, _, ok := splitTable(t); !ok {
			p.Addf([]string{"tables", component.Index(i)}, "invalid table %q: want schema.table or table (letters, digits, underscores)", t)
		}
	}
	if c.Schema != "" && !identRE.MatchString(c.Schema) {
		p.Addf([]string{"schema"}, "invalid schema name %q", c.Schema)
	}
	if c.StatusInterval.D() < 10*time.Millisecond {
		p.Addf([]string{"status_interval"}, "must be at least 10ms")
	}
}

// splitTable splits "schema.table" ("table" means public.table).
func splitTable(s string) (schema, table string, ok bool) {
	schema, table = "public", s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		schema, table = s[:i], s[i+1:]
	}
	return schema, table, identRE.MatchString(schema) && identRE.MatchString(table)
}

func (c *Config) publication() string {
	if c.Publication != "" {
		return c.Publication
	}
	return c.Slot
}

// Register adds the postgres_cdc source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    Name,
		Summary: "PostgreSQL change data capture: a consistent snapshot, then every insert, update and delete through logical replication",
		Description: "Reads the changes of the listed tables from a logical replication slot (pgoutput) and emits each as a " +
			"Debezium-style change event (see docs/connectors/cdc.md). On first start it can snapshot the tables from the slot's " +
			"exported snapshot. The slot's confirmed position advances only past transactions that were completely " +
			"delivered, filtered or dead-lettered. Lanes are tables; the record key is the row's primary key. " +
			"The server needs wal_level = logical. See docs/connectors/postgres.md.",
		Example: `[source]
type = "postgres_cdc"
dsn = "postgres://replicator@db.example:5432/shop?sslmode=verify-full"
password = "${env:PG_PASSWORD}"
tables = ["public.orders", "public.customers"]
slot = "sluice_orders"
`,
		New:   newConfig,
		Build: build,
	})
}
