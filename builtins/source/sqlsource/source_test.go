package sqlsource

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// db is one of the two databases, seen through database/sql-like calls.
type db struct {
	driver string
	dsn    string
	exec   func(t testing.TB, q string, args ...any)
	ph     func(n int) string
}

func pgDB(t testing.TB) *db {
	dsn := testkit.Postgres(t)
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return &db{driver: "postgres", dsn: dsn, ph: func(n int) string { return fmt.Sprintf("$%d", n) },
		exec: func(t testing.TB, q string, args ...any) {
			t.Helper()
			if _, err := c.Exec(context.Background(), q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}}
}

func myDB(t testing.TB) *db {
	dsn := testkit.MariaDB(t)
	c, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &db{driver: "mysql", dsn: dsn, ph: func(int) string { return "?" },
		exec: func(t testing.TB, q string, args ...any) {
			t.Helper()
			if _, err := c.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}}
}

func (d *db) table(t testing.TB, cols string) string {
	name := testkit.Unique(t, "sq")
	d.exec(t, "CREATE TABLE "+name+" ("+cols+")")
	t.Cleanup(func() { d.exec(t, "DROP TABLE IF EXISTS "+name) })
	return name
}

func (d *db) source(t testing.TB, state, extra string) component.Source {
	env := componenttest.Env(t, zerolog.InfoLevel)
	env.StateDir = state
	return componenttest.Build(t, Register, component.KindSource, Name,
		fmt.Sprintf("driver = %q\ndsn = %q\npoll_interval = \"50ms\"\n%s", d.driver, d.dsn, extra), env).(component.Source)
}

// open builds a source as source does and opens it; it is closed when the
// test ends.
func (d *db) open(t testing.TB, state, extra string) component.Source {
	t.Helper()
	src := d.source(t, state, extra)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	return src
}

func serial(d *db) string {
	if d.driver == "postgres" {
		return "id bigserial PRIMARY KEY"
	}
	return "id bigint AUTO_INCREMENT PRIMARY KEY"
}

func TestConformance(t *testing.T) {
	for _, mk := range []func(testing.TB) *db{pgDB, myDB} {
		d := mk(t)
		t.Run(d.driver, func(t *testing.T) {
			tbl := d.table(t, serial(d)+", body text NOT NULL")
			state := t.TempDir()
			componenttest.Source(t, componenttest.SourceSuite{
				New: func(tb testing.TB) component.Source {
					return d.source(tb, state, fmt.Sprintf("table = %q\nincrementing_column = \"id\"\nbatch_size = 7", tbl))
				},
				Produce: func(tb testing.TB, bodies [][]byte) {
					for _, b := range bodies {
						d.exec(tb, "INSERT INTO "+tbl+" (body) VALUES ("+d.ph(1)+")", string(b))
					}
				},
				Body: func(tb testing.TB, m message.Message) []byte {
					var ev struct {
						Data struct {
							Body string `json:"body"`
						} `json:"data"`
					}
					if err := json.Unmarshal(m.Payload, &ev); err != nil {
						tb.Fatalf("%v: %s", err, m.Payload)
					}
					return []byte(ev.Data.Body)
				},
				Redelivers: true,
				Ordered:    true,
			})
		})
	}
}

// readAll reads and acknowledges until n rows came, returning their data.
func readAll(t *testing.T, src component.Source, n int) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	for len(out) < n {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v (%d of %d rows)", err, len(out), n)
		}
		for _, m := range b.Messages {
			var ev struct {
				Data map[string]json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("%v: %s", err, m.Payload)
			}
			out = append(out, ev.Data)
		}
		b.Ack(nil)
	}
	return out
}

// TestTimestampModes reads rows by timestamp, with more rows sharing one
// timestamp than a batch holds, then updated rows.
func TestTimestampModes(t *testing.T) {
	for _, mk := range []func(testing.TB) *db{pgDB, myDB} {
		d := mk(t)
		for _, mode := range []string{"timestamp", "timestamp+incrementing"} {
			t.Run(d.driver+"/"+mode, func(t *testing.T) {
				tsType := "timestamp(6)"
				if d.driver == "mysql" {
					tsType = "datetime(6)"
				}
				tbl := d.table(t, "id int PRIMARY KEY, v text, amount decimal(10,2), at "+tsType)
				for i := 1; i <= 12; i++ {
					at := "2026-01-01 00:00:00"
					if i > 10 {
						at = fmt.Sprintf("2026-01-01 00:00:%02d", i)
					}
					d.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v%d', %d.50, '%s')", tbl, i, i, i, at))
				}
				src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nmode = %q\ntimestamp_column = \"at\"\nincrementing_column = \"id\"\nbatch_size = 4", tbl, mode))
				rows := readAll(t, src, 12)
				seen := map[string]int{}
				for _, r := range rows {
					seen[string(r["id"])]++
				}
				if len(seen) != 12 {
					t.Fatalf("rows: %v", seen)
				}
				if string(rows[0]["amount"]) != `"1.50"` || !strings.HasPrefix(string(rows[11]["at"]), `"2026-01-01T00:00:12`) {
					t.Fatalf("typed values: %v", rows[11])
				}
				d.exec(t, "UPDATE "+tbl+" SET v = 'new', at = '2026-01-02 00:00:00' WHERE id = 3")
				rows = readAll(t, src, 1)
				if string(rows[0]["id"]) != "3" || string(rows[0]["v"]) != `"new"` {
					t.Fatalf("updated row: %v", rows[0])
				}
			})
		}
	}
}

func TestBadQuery(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, "id int PRIMARY KEY")
	src := d.open(t, t.TempDir(), fmt.Sprintf("query = \"SELECT 1 AS x FROM %s\"\nincrementing_column = \"id\"", tbl))
	_, err := src.Read(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("Read: %v, want task-permanent", err)
	}
}

// TestTimestampNull: a row whose timestamp_column is NULL is not read (it
// has no place in the order; as the position it stopped every later
// query, which compared the column with ”), and is read once the column
// is set. In timestamp+incrementing mode a row with a NULL id is left out
// as well.
func TestTimestampNull(t *testing.T) {
	for _, mk := range []func(testing.TB) *db{pgDB, myDB} {
		d := mk(t)
		for _, mode := range []string{"timestamp", "timestamp+incrementing"} {
			t.Run(d.driver+"/"+mode, func(t *testing.T) {
				tsType := "timestamp(6)"
				if d.driver == "mysql" {
					tsType = "datetime(6)"
				}
				tbl := d.table(t, "k int PRIMARY KEY, id int NULL, at "+tsType+" NULL")
				d.exec(t, "INSERT INTO "+tbl+" VALUES (1, 1, '2026-01-01 00:00:00'), (2, 2, NULL), (3, NULL, '2026-01-01 00:00:01')")
				src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nmode = %q\ntimestamp_column = \"at\"\nincrementing_column = \"id\"", tbl, mode))
				want := []string{"1", "3"}
				if mode == "timestamp+incrementing" {
					want = []string{"1"}
				}
				keys := func(rows []map[string]json.RawMessage) (out []string) {
					for _, r := range rows {
						out = append(out, string(r["k"]))
					}
					return out
				}
				if got := keys(readAll(t, src, len(want))); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("first rows: %v, want %v", got, want)
				}
				d.exec(t, "INSERT INTO "+tbl+" VALUES (4, 4, '2026-01-02 00:00:00')")
				if got := keys(readAll(t, src, 1)); fmt.Sprint(got) != "[4]" {
					t.Fatalf("the row inserted next: %v", got)
				}
				d.exec(t, "UPDATE "+tbl+" SET at = '2026-01-03 00:00:00' WHERE k = 2")
				if got := keys(readAll(t, src, 1)); fmt.Sprint(got) != "[2]" {
					t.Fatalf("the row whose timestamp was set: %v", got)
				}
			})
		}
	}
}

// TestEmptySavedPosition: a position saved without the mode's column (by
// an earlier version, from a row whose timestamp was NULL, or in another
// mode) would fail every query (at > ”); the source reads from the start
// again instead.
func TestEmptySavedPosition(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, "id int PRIMARY KEY, at timestamp(6) NULL")
	d.exec(t, "INSERT INTO "+tbl+" VALUES (1, '2026-01-01 00:00:00'), (2, '2026-01-02 00:00:00')")
	state := t.TempDir()
	cfg := fmt.Sprintf("table = %q\nmode = \"timestamp+incrementing\"\ntimestamp_column = \"at\"\nincrementing_column = \"id\"", tbl)
	// What an earlier version saved after a row with a NULL timestamp.
	src := d.source(t, state, cfg).(*Source)
	store, err := checkpoint.Open(src.cpDir, "source.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(&position{Set: true, TS: "", Inc: "7"}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	rows := readAll(t, src, 2)
	if string(rows[0]["id"]) != "1" || string(rows[1]["id"]) != "2" {
		t.Fatalf("rows: %v", rows)
	}
}

// TestMySQLTypes: the columns are typed as mysql_cdc types them (its
// TestTypesRoundTrip): a FLOAT keeps its stored 32-bit value (the text
// protocol prints 6 significant digits), BIT(1) is a boolean, BIT(n) a
// number, zero dates are null, YEAR a number, MariaDB's JSON (LONGTEXT
// with a json_valid check, found in information_schema) embedded. A FLOAT
// column added later is read exactly too, also once the one read before
// is dropped.
func TestMySQLTypes(t *testing.T) {
	d := myDB(t)
	tbl := d.table(t, "id bigint PRIMARY KEY, f FLOAT, fmd FLOAT(7,4), dbl DOUBLE, b1 BIT(1), b12 BIT(12), "+
		"dtm DATETIME, dt DATE, ts TIMESTAMP NULL, yr YEAR, js JSON, tx LONGTEXT")
	d.exec(t, "INSERT INTO "+tbl+` VALUES (1, 16777216, 0.1, 1e21, b'1', b'101010101010', '0000-00-00 00:00:00', '0000-00-00', '0000-00-00 00:00:00', 0, '{"a": 1}', '{"a": 1}'),`+
		` (2, 1.2345678, -2.5, -2.25e-300, b'0', b'0', '2026-01-02 03:04:05', '2026-01-02', '2026-01-02 03:04:05', 2026, '[1, 2]', 'x')`)
	want := []map[string]string{
		{"f": `16777216`, "fmd": `0.1`, "dbl": `1e+21`, "b1": `true`, "b12": `2730`, "dtm": `null`, "dt": `null`, "ts": `null`, "yr": `0`, "js": `{"a":1}`, "tx": `"{\"a\": 1}"`},
		{"f": `1.2345678`, "fmd": `-2.5`, "dbl": `-2.25e-300`, "b1": `false`, "b12": `0`, "dtm": `"2026-01-02T03:04:05Z"`, "dt": `"2026-01-02"`,
			"ts": `"2026-01-02T03:04:05Z"`, "yr": `2026`, "js": `[1,2]`, "tx": `"x"`},
	}
	check := func(t *testing.T, rows []map[string]json.RawMessage, want []map[string]string) {
		t.Helper()
		for i, w := range want {
			for col, v := range w {
				if got := string(rows[i][col]); got != v {
					t.Errorf("row %s: %s = %s, want %s", rows[i]["id"], col, got, v)
				}
			}
		}
	}
	t.Run("table", func(t *testing.T) {
		src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = \"id\"", tbl))
		check(t, readAll(t, src, 2), want)
	})
	// A query's result does not tell BIT(1) from BIT(8) nor MariaDB's JSON
	// from LONGTEXT: they are a number and a string.
	t.Run("query", func(t *testing.T) {
		src := d.open(t, t.TempDir(), fmt.Sprintf("query = \"SELECT * FROM %s\"\nincrementing_column = \"id\"", tbl))
		qwant := []map[string]string{{"f": `16777216`, "b1": `1`, "b12": `2730`, "dtm": `null`, "js": `"{\"a\": 1}"`}, {"f": `1.2345678`, "b1": `0`}}
		check(t, readAll(t, src, 2), qwant)
	})
	t.Run("altered", func(t *testing.T) {
		src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = \"id\"", tbl))
		check(t, readAll(t, src, 2), want)
		d.exec(t, "ALTER TABLE "+tbl+" DROP COLUMN f, ADD COLUMN g FLOAT")
		d.exec(t, "INSERT INTO "+tbl+" (id, g) VALUES (3, 16777217)")
		check(t, readAll(t, src, 1), []map[string]string{{"g": `16777216`, "fmd": `null`}})
		d.exec(t, "ALTER TABLE "+tbl+" ADD COLUMN h FLOAT")
		d.exec(t, "INSERT INTO "+tbl+" (id, g, h) VALUES (4, 1.2345678, 0.3)")
		check(t, readAll(t, src, 1), []map[string]string{{"g": `1.2345678`, "h": `0.3`}})
	})
}
