// Package sqlsource is the sql source: incremental queries against
// PostgreSQL or MariaDB/MySQL for databases where replication is not
// granted (Kafka Connect JDBC's incrementing and timestamp modes). Each
// poll reads the rows past the last position, in order; the position is
// checkpointed once their batch was delivered.
package sqlsource

import (
	"regexp"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Name is the component name.
const Name = "sql"

// EventType is the CloudEvents type of every event.
const EventType = "sluice.sql.row"

// Modes.
const (
	ModeIncrementing = "incrementing"
	ModeTimestamp    = "timestamp"
	ModeBoth         = "timestamp+incrementing"
)

// Config is the [source] table of type "sql".
type Config struct {
	Driver             string             `toml:"driver" required:"true" enum:"postgres,mysql" doc:"postgres (pgx's pgconn) or mysql (go-sql-driver/mysql, for MariaDB and MySQL)."`
	DSN                component.Secret   `toml:"dsn" required:"true" doc:"Connection string in the driver's own form: postgres://user@host:5432/db, or user@tcp(host:3306)/db. Treated as a secret: put a password through ${env:...} or in password."`
	Password           component.Secret   `toml:"password" doc:"Password, overriding the DSN's. Use ${env:NAME}."`
	Table              string             `toml:"table" doc:"Table to read (table or schema.table); or set query."`
	Query              string             `toml:"query" doc:"A SELECT to read instead of a table; Sluice wraps it (SELECT * FROM (query) AS q WHERE ... ORDER BY ...), so it must not end in ORDER BY or LIMIT, and it must return the position columns."`
	Mode               string             `toml:"mode" enum:"incrementing,timestamp,timestamp+incrementing" doc:"incrementing: rows whose incrementing_column is above the last one (new rows of an append-only table). timestamp: rows whose timestamp_column is after the last one (new and updated rows). timestamp+incrementing: both, the column pair ordering rows exactly."`
	IncrementingColumn string             `toml:"incrementing_column" doc:"A strictly increasing column (a serial or AUTO_INCREMENT key). Required by incrementing modes."`
	TimestampColumn    string             `toml:"timestamp_column" doc:"A column set to the time of each insert and update. Required by timestamp modes."`
	TimestampDelay     component.Duration `toml:"timestamp_delay" doc:"Timestamp modes: read only rows older than this, so that a transaction committing late with an earlier timestamp is not skipped."`
	TimestampZone      string             `toml:"timestamp_zone" doc:"Time zone (IANA name, e.g. Europe/Berlin) of timestamp_column's values when the column has no zone of its own (DATETIME, timestamp without time zone) and holds local time: timestamp_delay's cut-off is given in it. Default UTC. Leave unset for a TIMESTAMP or timestamptz column."`
	PollInterval       component.Duration `toml:"poll_interval" doc:"How long to wait after a poll that found nothing."`
	BatchSize          int                `toml:"batch_size" min:"1" max:"100000" doc:"Most rows read by one query (one batch)."`
	DecimalAsNumber    bool               `toml:"decimal_as_number" doc:"Write numeric/decimal columns as JSON numbers instead of strings."`
	TLS                *tlsconf.Client    `toml:"tls" doc:"TLS settings overriding the DSN's."`
}

func newConfig() any {
	return &Config{Mode: ModeIncrementing, PollInterval: component.Duration(time.Second), BatchSize: 1000}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// Validate checks the keys that need no connection.
func (c *Config) Validate(p *component.Problems) {
	if (c.Table == "") == (c.Query == "") {
		p.KeyErrorf(nil, "set either table or query")
	}
	if c.Table != "" && !identRE.MatchString(c.Table) {
		p.Addf([]string{"table"}, "invalid table %q: want table or schema.table", c.Table)
	}
	if c.Mode != ModeTimestamp && c.IncrementingColumn == "" {
		p.KeyErrorf(nil, "mode %q needs incrementing_column", c.Mode)
	}
	if c.Mode != ModeIncrementing && c.TimestampColumn == "" {
		p.KeyErrorf(nil, "mode %q needs timestamp_column", c.Mode)
	}
	for k, v := range map[string]string{"incrementing_column": c.IncrementingColumn, "timestamp_column": c.TimestampColumn} {
		if v != "" && !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`).MatchString(v) {
			p.Addf([]string{k}, "invalid column name %q", v)
		}
	}
	if c.TimestampZone != "" {
		if _, err := time.LoadLocation(c.TimestampZone); err != nil {
			p.Addf([]string{"timestamp_zone"}, "unknown time zone %q: want an IANA name such as Europe/Berlin, from the system's time zone database (the tzdata package, or ZONEINFO)", c.TimestampZone)
		}
	}
	if c.PollInterval.D() < 10*time.Millisecond {
		p.Addf([]string{"poll_interval"}, "must be at least 10ms")
	}
}

// Register adds the sql source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    Name,
		Summary: "Incremental queries against PostgreSQL or MariaDB/MySQL: new (and updated) rows by an incrementing or timestamp column",
		Description: "Polls a table or query for the rows past the last position (an incrementing column, a timestamp column or " +
			"both), in order, and emits each row as an event whose data holds its columns, typed. The position is checkpointed " +
			"in the state directory once a batch was delivered. For databases where replication is not granted; deletes are " +
			"not seen. See docs/connectors/sql.md.",
		Example: `[source]
type = "sql"
driver = "postgres"
dsn = "postgres://reader@db.example:5432/shop"
password = "${env:PG_PASSWORD}"
table = "public.orders"
mode = "timestamp+incrementing"
timestamp_column = "updated_at"
incrementing_column = "id"
`,
		New:   newConfig,
		Build: build,
	})
}
