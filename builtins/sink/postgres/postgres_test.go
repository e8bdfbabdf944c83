package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

type pgEnv struct {
	t   testing.TB
	dsn string
	db  *pgx.Conn
}

func newPG(t testing.TB) *pgEnv {
	dsn := testkit.Postgres(t)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return &pgEnv{t: t, dsn: dsn, db: db}
}

func (e *pgEnv) table(cols string) string {
	e.t.Helper()
	name := testkit.Unique(e.t, "sink")
	e.exec("CREATE TABLE " + name + " (" + cols + ")")
	e.t.Cleanup(func() { e.db.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
	return name
}

func (e *pgEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *pgEnv) sink(t testing.TB, dsn, extra string) component.Sink {
	t.Helper()
	return componenttest.Build(t, Register, component.KindSink, Name, fmt.Sprintf("dsn = %q\n%s", dsn, extra),
		componenttest.Env(t, zerolog.InfoLevel)).(component.Sink)
}

// viaProxy returns dsn with its host replaced by the proxy's.
func viaProxy(t testing.TB, dsn string, p *testkit.Proxy) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

func TestConformance(t *testing.T) {
	e := newPG(t)
	tbl := e.table("seq bigserial PRIMARY KEY, conformance text, n int CHECK (n >= 0)")
	proxy := testkit.NewProxy(t, "127.0.0.1:5432")
	dsn := viaProxy(t, e.dsn, proxy)
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(tb testing.TB) component.Sink {
			return e.sink(tb, dsn, fmt.Sprintf("table = %q\ncolumns = { conformance = \"$.conformance\", n = \"$.n\" }", tbl))
		},
		Received: func(tb testing.TB) [][]byte {
			rows, err := e.db.Query(context.Background(), "SELECT json_build_object('conformance', conformance, 'n', n)::text FROM "+tbl+" ORDER BY seq")
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

func (e *pgEnv) dump(tbl, order string) string {
	e.t.Helper()
	var s *string
	if err := e.db.QueryRow(context.Background(), "SELECT json_agg(t ORDER BY "+order+")::text FROM "+tbl+" t").Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	if s == nil {
		return "[]"
	}
	return strings.ReplaceAll(*s, "\n ", "")
}

func open(t *testing.T, s component.Sink) {
	t.Helper()
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
}

// TestModes applies upserts and change events, with the duplicates and
// mixed operations of one batch resolved to the last per key.
func TestModes(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, name text, tags text[], raw bytea, doc jsonb, at timestamptz, body text DEFAULT 'dflt'")
	up := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
	open(t, up)
	if err := write(t, up, `{"id":1,"name":"a"}`, `{"id":2,"name":"b"}`, `{"id":1,"name":"a2"}`); err != nil {
		t.Fatal(err)
	}
	if got := e.dump(tbl, "id"); !strings.Contains(got, `"id":1,"name":"a2"`) || !strings.Contains(got, `"id":2,"name":"b"`) {
		t.Fatal(got)
	}
	cdc := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, cdc)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	err := write(t, cdc,
		ev("c", "null", `{"id":3,"name":"c","tags":["x y","q\"z",null],"raw":"AP8Q","doc":{"k":[1,2]},"at":"2026-01-02T03:04:05.5Z","body":"big"}`),
		ev("u", "null", `{"id":3,"name":"c2","tags":[],"raw":null,"doc":null,"at":null}`), // body left out: unchanged
		ev("d", `{"id":2}`, "null"),
		ev("r", "null", `{"id":4,"name":"d"}`),
		ev("d", `{"id":4}`, "null"),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := e.dump(tbl, "id")
	want := `[{"id":1,"name":"a2","tags":null,"raw":null,"doc":null,"at":null,"body":"dflt"}, ` +
		`{"id":3,"name":"c2","tags":[],"raw":null,"doc":null,"at":null,"body":"big"}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Every type through one insert.
	if err := write(t, cdc, ev("c", "null", `{"id":5,"tags":["x y","q\"z",null],"raw":"AP8Q","doc":{"k":[1,2]},"at":"2026-01-02T03:04:05.5+02:00"}`)); err != nil {
		t.Fatal(err)
	}
	var tags []*string
	var raw []byte
	var doc string
	var at string
	e.db.QueryRow(context.Background(), "SELECT tags, raw, doc::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM "+tbl+" WHERE id = 5").Scan(&tags, &raw, &doc, &at)
	if len(tags) != 3 || *tags[1] != `q"z` || tags[2] != nil || string(raw) != "\x00\xff\x10" || doc != `{"k": [1, 2]}` || at != "2026-01-02 01:04:05.500" {
		t.Fatalf("tags %v raw %x doc %s at %s", tags, raw, doc, at)
	}
}

// TestBadRecords dead-letters what cannot be a row, alone.
func TestBadRecords(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, raw bytea, n int NOT NULL")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", raw = \"$.raw\", n = \"$.n\" }", tbl))
	open(t, s)
	err := write(t, s, `{"id":1,"n":1}`, `not json`, `{"id":2,"raw":"!!","n":1}`, `{"id":3,"n":null}`, `{"id":1,"n":2}`, `{"id":4,"n":"x"}`, `{"id":5,"n":5}`)
	var re *component.RecordErrors
	if !errors.As(err, &re) {
		t.Fatalf("want RecordErrors, got %v", err)
	}
	for i, want := range map[int]string{1: "not JSON", 2: "base64", 3: "null value", 4: "duplicate key", 5: "invalid input syntax"} {
		if re.Errs[i] == nil || !strings.Contains(re.Errs[i].Error(), want) || component.ClassOf(re.Errs[i]) != component.ClassEventPermanent {
			t.Errorf("record %d: %v, want an event-permanent error saying %q", i, re.Errs[i], want)
		}
	}
	if len(re.Errs) != 5 {
		t.Fatalf("errors: %v", re.Errs)
	}
	if got := e.dump(tbl, "id"); got != `[{"id":1,"raw":null,"n":1}, {"id":5,"raw":null,"n":5}]` {
		t.Fatal(got)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, v text")
	nokey := e.table("v text")
	for name, c := range map[string]struct{ extra, want string }{
		"missing table":  {`table = "nope_nope"`, "does not exist"},
		"unknown column": {fmt.Sprintf("table = %q\ncolumns = { x = \"$.x\" }", tbl), `no column "x"`},
		"no key":         {fmt.Sprintf("table = %q\nmode = \"upsert\"", nokey), "no primary key, set key"},
		"key not mapped": {fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { v = \"$.v\" }", tbl), `key column "id" has no entry in columns`},
	} {
		t.Run(name, func(t *testing.T) {
			s := e.sink(t, e.dsn, c.extra)
			err := s.Open(context.Background())
			if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want task-permanent saying %q", err, c.want)
			}
		})
	}
}

func TestReceivedJSON(t *testing.T) {
	// json_build_object output must read back as the payload.
	var v map[string]any
	if json.Unmarshal([]byte(`{"conformance" : "x", "n" : 1}`), &v) != nil {
		t.Fatal()
	}
}

// TestTLS connects through TLS set by the tls table, overriding the DSN's
// sslmode=disable (the local server has ssl = on with a self-signed
// certificate).
func TestTLS(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY")
	app := testkit.Unique(t, "app")
	u, _ := url.Parse(e.dsn)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s := e.sink(t, u.String(), fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\" }\ntls = { insecure_skip_verify = true }", tbl))
	open(t, s)
	if err := write(t, s, `{"id":1}`); err != nil {
		t.Fatal(err)
	}
	var n int
	e.db.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1 AND s.ssl", app).Scan(&n)
	if n == 0 {
		t.Fatal("the sink's connections do not use TLS")
	}
}
