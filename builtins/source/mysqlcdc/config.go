// Package mysqlcdc is the `mysql_cdc` source: change data capture from
// MariaDB (and MySQL) through the row-based binary log, read as a replica
// with the protocol package builtins/internal/binlog. An optional
// consistent snapshot of the tables comes first; changes are emitted as
// the shared Debezium envelope (builtins/internal/cdc) and the binlog
// position is checkpointed only once every change before it was handled.
package mysqlcdc

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/runtime/component"
)

// EventType is the CloudEvents type of the change events.
const EventType = "sluice.mysql_cdc.change"

// Config is the `[source] type = "mysql_cdc"` table.
type Config struct {
	DSN      component.Secret `toml:"dsn" required:"true" doc:"The server, in go-sql-driver/mysql's form: user:password@tcp(host:3306)/ (the database part is ignored: tables name theirs). Pass the password through ${env:NAME}. tls=true or tls=skip-verify in the parameters connect with TLS. The user needs REPLICATION SLAVE, REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR) and SELECT on the tables."`
	Tables   []string         `toml:"tables" required:"true" doc:"The tables to capture, as db.table. Each table is a lane of its own."`
	ServerID uint32           `toml:"server_id" doc:"The replica id this source registers with; it must differ from the server's and from every other replica's and reader's of the same server (the server drops an older connection with the same id). 0: derived from the task name (a number from 1,000,000,000 up)."`
	Snapshot bool             `toml:"snapshot" doc:"On the first start (no checkpoint yet), read every row of the tables as of one instant (op \"r\") before streaming the changes committed after it. false: stream from the server's current position, without the existing rows."`

	SnapshotChunk   int                `toml:"snapshot_chunk_size" min:"1" max:"1000000" doc:"Rows read per snapshot query, in primary-key order; an interrupted snapshot resumes after the last delivered row."`
	Heartbeat       component.Duration `toml:"heartbeat" doc:"How often the server sends a heartbeat on an idle stream; a stream silent for three heartbeats is reconnected."`
	DecimalAsNumber bool               `toml:"decimal_as_number" doc:"Write DECIMAL values as JSON numbers instead of strings (readers that parse numbers as binary floats lose digits)."`
	MaxEvents       int                `toml:"max_events" min:"1" max:"100000" doc:"Most changes in one batch handed to the task."`

	Concurrency int    `toml:"concurrency" min:"1" max:"32" doc:"Workers processing the changes; see order."`
	Order       string `toml:"order" enum:"partition,key,none" doc:"What stays in order with concurrency > 1: partition keeps each table's changes in commit order (one worker per table), key keeps each row's changes in order (a table spread over workers by primary key), none drops ordering."`
}

// New returns a Config with the documented defaults.
func New() *Config {
	return &Config{
		Snapshot:      true,
		SnapshotChunk: 10000,
		Heartbeat:     component.Duration(10 * time.Second),
		MaxEvents:     1000,
		Concurrency:   1,
		Order:         "partition",
	}
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	if c.DSN != "" {
		if _, err := mysql.ParseDSN(c.DSN.Reveal()); err != nil {
			p.Addf([]string{"dsn"}, "not a go-sql-driver/mysql DSN (user:password@tcp(host:3306)/): %v", stripDSN(err))
		}
	}
	if len(c.Tables) == 0 {
		p.Addf([]string{"tables"}, "name at least one table, as db.table")
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		db, table, ok := strings.Cut(t, ".")
		if !ok || db == "" || table == "" || strings.Contains(table, ".") {
			p.Addf([]string{"tables", fmt.Sprint(i)}, "%q is not db.table", t)
			continue
		}
		if seen[t] {
			p.Addf([]string{"tables", fmt.Sprint(i)}, "%q is listed twice", t)
		}
		seen[t] = true
	}
	if d := c.Heartbeat.D(); d < 100*time.Millisecond || d > time.Hour {
		p.Addf([]string{"heartbeat"}, "must be between 100ms and 1h, got %s", c.Heartbeat)
	}
}

// stripDSN keeps a parse error from echoing the DSN (and its password).
func stripDSN(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "@"); i >= 0 {
		return "invalid DSN"
	}
	return msg
}

// defaultServerID derives a replica id from the task name, in a range
// servers and their replicas rarely use.
func defaultServerID(task string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(task))
	return 1_000_000_000 + h.Sum32()%1_000_000_000
}

// Register adds the mysql_cdc source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "mysql_cdc",
		Summary: "Change data capture from MariaDB or MySQL: an optional consistent snapshot, then the row-based binlog.",
		Description: "Reads the tables' rows (op \"r\") and then every insert, update and delete (\"c\", \"u\", \"d\") " +
			"committed after, as change events in Debezium's envelope (docs/connectors/cdc.md), with `type` = `" + EventType + "` " +
			"and `id` = `<gtid>:<n>` (MariaDB GTID and the change's number in its transaction) or `<file>:<pos>:<n>` without GTIDs. " +
			"The server needs log_bin, binlog_format = ROW and (for whole before images) binlog_row_image = FULL. " +
			"The position (a MariaDB GTID position, else binlog file and offset) is checkpointed in the state directory once every " +
			"change of every transaction before it was delivered, filtered or dead-lettered: after a crash the changes after it " +
			"are read again, with the same ids. See docs/connectors/mysql.md.",
		Example: "[source]\ntype = \"mysql_cdc\"\ndsn = \"cdc:${env:MYSQL_PASSWORD}@tcp(db.example:3306)/\"\n" +
			"tables = [\"shop.orders\", \"shop.customers\"]\nserver_id = 4001\norder = \"key\"\nconcurrency = 4\n",
		New:   func() any { return New() },
		Build: build,
	})
}

func build(cfg any, env component.Env) (any, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("mysql_cdc source: unexpected config type %T", cfg)
	}
	mc, err := mysql.ParseDSN(c.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("mysql_cdc source: dsn: %s", stripDSN(err))
	}
	o := options{
		dsn:             mc,
		snapshot:        c.Snapshot,
		chunk:           c.SnapshotChunk,
		heartbeat:       c.Heartbeat.D(),
		decimalAsNumber: c.DecimalAsNumber,
		maxEvents:       c.MaxEvents,
		serverID:        c.ServerID,
		stateDir:        env.StateDir,
		taskDir:         env.Dir,
		task:            env.Task,
		logger:          env.Logger,
		metrics:         env.Metrics,
	}
	if o.task == "" {
		o.task = "task"
	}
	if o.serverID == 0 {
		o.serverID = defaultServerID(o.task)
	}
	for _, t := range c.Tables {
		db, table, _ := strings.Cut(t, ".")
		o.tables = append(o.tables, tableName{db, table})
	}
	return newSource(o), nil
}

// tableName is db.table.
type tableName struct{ DB, Table string }

func (t tableName) String() string { return t.DB + "." + t.Table }
