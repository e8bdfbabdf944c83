package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

type myEnv struct {
	t   testing.TB
	dsn string
	db  *sql.DB
}

func newMy(t testing.TB) *myEnv {
	dsn := testkit.MariaDB(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &myEnv{t: t, dsn: dsn, db: db}
}

func (e *myEnv) table(cols string) string {
	e.t.Helper()
	name := testkit.Unique(e.t, "sink")
	e.exec("CREATE TABLE " + name + " (" + cols + ")")
	e.t.Cleanup(func() { e.db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

func (e *myEnv) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *myEnv) sink(t testing.TB, dsn, extra string) component.Sink {
	t.Helper()
	return componenttest.Build(t, Register, component.KindSink, Name, fmt.Sprintf("dsn = %q\n%s", dsn, extra),
		componenttest.Env(t, zerolog.InfoLevel)).(component.Sink)
}

func viaProxy(t testing.TB, dsn string, p *testkit.Proxy) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c.Addr = p.Addr()
	return c.FormatDSN()
}

func TestConformance(t *testing.T) {
	e := newMy(t)
	tbl := e.table("seq bigint AUTO_INCREMENT PRIMARY KEY, conformance varchar(200), n int CHECK (n >= 0)")
	proxy := testkit.NewProxy(t, "127.0.0.1:3306")
	dsn := viaProxy(t, e.dsn, proxy)
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(tb testing.TB) component.Sink {
			return e.sink(tb, dsn, fmt.Sprintf("table = %q\ncolumns = { conformance = \"$.conformance\", n = \"$.n\" }", tbl))
		},
		Received: func(tb testing.TB) [][]byte {
			rows, err := e.db.Query("SELECT JSON_OBJECT('conformance', conformance, 'n', n) FROM " + tbl + " ORDER BY seq")
			if err != nil {
				tb.Fatal(err)
			}
			defer rows.Close()
			var out [][]byte
			for rows.Next() {
				var s string
				rows.Scan(&s)
				out = append(out, []byte(s))
			}
			return out
		},
		Ordered: true,
		Cut:     proxy.Cut,
		Restore: proxy.Restore,
		Poison: func(tb testing.TB) []byte {
			return []byte(`{"conformance":"poison","n":-1}`)
		},
	})
}

func write(t *testing.T, s component.Sink, payloads ...string) error {
	t.Helper()
	msgs := make([]message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.Message{Payload: []byte(p), Ref: int32(i)}
	}
	return s.Write(context.Background(), msgs)
}

func open(t *testing.T, s component.Sink) {
	t.Helper()
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
}

// dump returns the table's rows as "col=value|..." lines ordered by id.
func (e *myEnv) dump(tbl string) string {
	e.t.Helper()
	rows, err := e.db.Query("SELECT * FROM " + tbl + " ORDER BY id")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		var parts []string
		for i, v := range vals {
			if v == nil {
				parts = append(parts, cols[i]+"=NULL")
			} else {
				parts = append(parts, fmt.Sprintf("%s=%q", cols[i], v))
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return strings.Join(out, "\n")
}

func TestModes(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, name varchar(50), raw blob, doc json, at datetime(6), flag tinyint(1), body text DEFAULT 'dflt'")
	up := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
	open(t, up)
	if err := write(t, up, `{"id":1,"name":"a"}`, `{"id":2,"name":"b"}`, `{"id":1,"name":"a2"}`); err != nil {
		t.Fatal(err)
	}
	cdc := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, cdc)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	err := write(t, cdc,
		ev("c", "null", `{"id":3,"name":"c","raw":"AP8Q","doc":{"k":[1,2]},"at":"2026-01-02T03:04:05.5+02:00","flag":true,"body":"big"}`),
		ev("u", "null", `{"id":3,"name":"c2","raw":"AP8Q","doc":{"k":[1,2]},"at":"2026-01-02T03:04:05.5+02:00","flag":false}`),
		ev("d", `{"id":2}`, "null"),
		ev("r", "null", `{"id":4,"name":"d"}`),
		ev("d", `{"id":4}`, "null"),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := `id="1"|name="a2"|raw=NULL|doc=NULL|at=NULL|flag=NULL|body="dflt"` + "\n" +
		`id="3"|name="c2"|raw="\x00\xff\x10"|doc="{\"k\":[1,2]}"|at="2026-01-02 01:04:05.500000"|flag="0"|body="big"`
	if got := e.dump(tbl); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestBadRecords(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, raw blob, n int NOT NULL")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", raw = \"$.raw\", n = \"$.n\" }", tbl))
	open(t, s)
	err := write(t, s, `{"id":1,"n":1}`, `not json`, `{"id":2,"raw":"!!","n":1}`, `{"id":3,"n":null}`, `{"id":1,"n":2}`, `{"id":4,"n":"x"}`, `{"id":5,"n":5}`)
	var re *component.RecordErrors
	if !errors.As(err, &re) {
		t.Fatalf("want RecordErrors, got %v", err)
	}
	for i, want := range map[int]string{1: "not JSON", 2: "base64", 3: "cannot be null", 4: "Duplicate entry", 5: "Incorrect integer value"} {
		if re.Errs[i] == nil || !strings.Contains(re.Errs[i].Error(), want) || component.ClassOf(re.Errs[i]) != component.ClassEventPermanent {
			t.Errorf("record %d: %v, want an event-permanent error saying %q", i, re.Errs[i], want)
		}
	}
	if len(re.Errs) != 5 {
		t.Fatalf("errors: %v", re.Errs)
	}
	if got := e.dump(tbl); got != `id="1"|raw=NULL|n="1"`+"\n"+`id="5"|raw=NULL|n="5"` {
		t.Fatal(got)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, v text")
	for name, c := range map[string]struct{ dsn, extra, want string }{
		"missing table":  {e.dsn, `table = "nope_nope"`, "does not exist"},
		"unknown column": {e.dsn, fmt.Sprintf("table = %q\ncolumns = { x = \"$.x\" }", tbl), `no column "x"`},
		"wrong password": {"sluice_nobody:wrong@tcp(127.0.0.1:3306)/test", fmt.Sprintf("table = %q", tbl), "Access denied"},
	} {
		t.Run(name, func(t *testing.T) {
			s := e.sink(t, c.dsn, c.extra)
			err := s.Open(context.Background())
			if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want task-permanent saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Fatalf("the password leaked: %v", err)
			}
		})
	}
}
