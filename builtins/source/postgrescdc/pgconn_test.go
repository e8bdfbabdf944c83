package postgrescdc

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestAwkwardKeyNames captures a table whose primary key columns have
// names that need quoting in SQL and escaping in a text[] literal, in a key
// order that is not the column order: the catalog lookup must return them
// as they are, in key order, for the snapshot's chunks and the events' keys.
func TestAwkwardKeyNames(t *testing.T) {
	e := newPG(t)
	names := []string{`we"ird`, `a,b`, `sp ace`, `{braced}`, `back\slash`, `NULL`}
	key := []string{names[4], names[0], names[3], names[1], names[5], names[2]}
	var cols, keyCols []string
	for _, n := range names {
		cols = append(cols, quoteIdent(n)+" int")
	}
	for _, n := range key {
		keyCols = append(keyCols, quoteIdent(n))
	}
	tbl := e.table("awkward", strings.Join(cols, ", ")+", v text, PRIMARY KEY ("+strings.Join(keyCols, ", ")+")")
	e.exec("INSERT INTO " + tbl + " VALUES (1, 2, 3, 4, 5, 6, 'snap'), (1, 2, 3, 4, 6, 6, 'snap')")
	src := e.source(t, `tables = ["`+tbl+`"]`+"\nsnapshot_chunk = 1")
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	if len(src.tables) != 1 || !slices.Equal(src.tables[0].pk, key) {
		t.Fatalf("primary key read from the catalog: %q, want %q", src.tables[0].pk, key)
	}
	c := collect(t, src)
	e.exec("INSERT INTO " + tbl + " VALUES (7, 8, 9, 10, 11, 12, 'stream')")
	// The key object lists the key columns in key order.
	wantKey := func(vals ...int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i, n := range key {
			if i > 0 {
				b.WriteByte(',')
			}
			q, _ := json.Marshal(n)
			b.Write(q)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(vals[i]))
		}
		b.WriteByte('}')
		return b.String()
	}
	for _, want := range []struct{ op, key string }{
		{"r", wantKey(5, 1, 4, 2, 6, 3)},
		{"r", wantKey(6, 1, 4, 2, 6, 3)},
		{"c", wantKey(11, 7, 10, 8, 12, 9)},
	} {
		ev := c.next()
		if ev.Data.Op != want.op || ev.key != want.key {
			t.Fatalf("got op %s key %s, want op %s key %s", ev.Data.Op, ev.key, want.op, want.key)
		}
	}
}

// TestPgxSettingsInDSN: a DSN written for pgx, with settings pgx took for
// itself (and pgxpool's), still opens the source: the catalog connection,
// the replication connection and the snapshot's.
func TestPgxSettingsInDSN(t *testing.T) {
	e := newPG(t)
	tbl := e.table("pgxdsn", "id int PRIMARY KEY")
	e.exec("INSERT INTO " + tbl + " VALUES (1)")
	withPgx := *e
	withPgx.dsn = e.dsnWith("statement_cache_capacity=64&default_query_exec_mode=exec&pool_max_conns=8&pool_max_conn_lifetime=1h")
	src := withPgx.source(t, `tables = ["`+tbl+`"]`)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	e.exec("INSERT INTO " + tbl + " VALUES (2)")
	for _, want := range []string{`{"id":1}`, `{"id":2}`} {
		if ev := c.next(); ev.key != want {
			t.Fatalf("got key %s (op %s), want %s", ev.key, ev.Data.Op, want)
		}
	}
}

// TestApplicationName: the DSN's application_name names the source's
// connections on the server (pg_stat_activity), the replication stream's
// among them, as it does the sink's; sluice is only the default.
func TestApplicationName(t *testing.T) {
	e := newPG(t)
	app := testkit.Unique(t, "app")
	tbl := e.table("named", "id int PRIMARY KEY")
	e.dsn = e.dsnWith("application_name=" + app)
	src := e.source(t, `tables = ["`+tbl+`"]`)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	e.exec("INSERT INTO " + tbl + " VALUES (1)")
	if ev := c.next(); ev.Data.Op != "c" {
		t.Fatalf("event %+v, want the insert", ev)
	}
	var walsenders int
	if err := e.db.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'walsender'", app).Scan(&walsenders); err != nil {
		t.Fatal(err)
	}
	if walsenders != 1 {
		t.Fatalf("%d replication connections named %q, want the stream's", walsenders, app)
	}
}
