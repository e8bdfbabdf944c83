package mysqlcdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// fixture is a test's tables on the local MariaDB and a state folder.
type fixture struct {
	t     testing.TB
	dsn   string
	db    *sql.DB
	state string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dsn := testkit.MariaDB(t)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	mc.Params = map[string]string{"time_zone": "'+00:00'", "sql_mode": "''"}
	mc.MultiStatements = true
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var logBin int
	if err := db.QueryRow("SELECT @@log_bin").Scan(&logBin); err != nil {
		t.Fatal(err)
	}
	if logBin != 1 {
		if testkit.Integration() {
			t.Fatal("the binlog is off on the test server (.ci/services turns it on)")
		}
		t.Skip("the binlog is off on the test server (.ci/services turns it on)")
	}
	mc.Params = nil
	mc.MultiStatements = false
	mc.DBName = ""
	return &fixture{t: t, dsn: mc.FormatDSN(), db: db, state: t.TempDir()}
}

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Exec(q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

// table creates a table named after the test with the given column
// definitions and drops it at the end; it returns "test.<name>".
func (f *fixture) table(prefix, cols string) string {
	f.t.Helper()
	name := "test." + testkit.Unique(f.t, prefix)
	f.exec("CREATE TABLE " + name + " (" + cols + ")")
	f.t.Cleanup(func() { f.db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

// config returns the source's TOML for tables, with extra keys.
func (f *fixture) config(tables []string, extra string) string {
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = fmt.Sprintf("%q", t)
	}
	return fmt.Sprintf("dsn = %q\ntables = [%s]\nserver_id = %d\n%s", f.dsn, strings.Join(q, ", "), 2000000000+time.Now().UnixNano()%100000000, extra)
}

// build builds the source as the loader would, with the fixture's state
// folder (every build resumes the last one's checkpoint).
func (f *fixture) build(src string) *Source {
	f.t.Helper()
	env := componenttest.Env(f.t, zerolog.InfoLevel)
	env.StateDir = f.state
	return componenttest.Build(f.t, Register, component.KindSource, "mysql_cdc", src, env).(*Source)
}

func (f *fixture) open(src string) *Source {
	f.t.Helper()
	s := f.build(src)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	if err := s.Open(ctx); err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	f.t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// change is a decoded change event.
type change struct {
	ID   string `json:"id"`
	Data struct {
		Op     string         `json:"op"`
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
		Source struct {
			Table    string  `json:"table"`
			DB       string  `json:"db"`
			Snapshot bool    `json:"snapshot"`
			GTID     *string `json:"gtid"`
			File     string  `json:"file"`
			Pos      int64   `json:"pos"`
		} `json:"source"`
		Key map[string]any `json:"key"`
	} `json:"data"`
	lane string
	key  string
	ack  func(error)
}

func decode(t testing.TB, lane string, payload, key []byte) change {
	t.Helper()
	var c change
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("event %s: %v", payload, err)
	}
	c.lane, c.key = lane, string(key)
	return c
}

// collector reads a source on a goroutine, acking every batch, and keeps
// the changes.
type collector struct {
	mu      sync.Mutex
	changes []change
	err     error
	done    chan struct{}
	cancel  context.CancelFunc
}

func collect(t testing.TB, s component.Source) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		for {
			b, err := s.Read(ctx)
			if err != nil {
				c.mu.Lock()
				if ctx.Err() == nil {
					c.err = err
				}
				c.mu.Unlock()
				return
			}
			var got []change
			for _, m := range b.Messages {
				if m.Err != nil {
					c.mu.Lock()
					c.err = m.Err
					c.mu.Unlock()
				}
				got = append(got, decode(t, b.Lane, m.Payload, m.Key))
			}
			c.mu.Lock()
			c.changes = append(c.changes, got...)
			c.mu.Unlock()
			if b.Ack != nil {
				b.Ack(nil)
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	c.cancel()
	<-c.done
}

func (c *collector) snapshot() ([]change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]change(nil), c.changes...), c.err
}

// waitFor waits until cond holds for the changes collected so far.
func (c *collector) waitFor(t testing.TB, what string, cond func([]change) bool) []change {
	t.Helper()
	var got []change
	testkit.WaitFor(t, what, func() bool {
		var err error
		got, err = c.snapshot()
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		return cond(got)
	})
	return got
}

// rowsOf reads a table as the change events should leave it: id -> row.
func (f *fixture) rowsOf(table, cols string) map[string]string {
	f.t.Helper()
	rows, err := f.db.Query("SELECT id, CONCAT_WS('|', " + cols + ") FROM " + table)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			f.t.Fatal(err)
		}
		out[id] = v
	}
	return out
}

// apply replays changes into a table image: id -> the after image's
// columns joined as rowsOf joins them.
func apply(changes []change, cols []string) map[string]string {
	out := map[string]string{}
	for _, c := range changes {
		switch c.Data.Op {
		case "d":
			delete(out, fmt.Sprint(c.Data.Before["id"]))
		default:
			vals := make([]string, len(cols))
			for i, k := range cols {
				vals[i] = fmt.Sprint(c.Data.After[k])
			}
			out[fmt.Sprint(c.Data.After["id"])] = strings.Join(vals, "|")
		}
	}
	return out
}
