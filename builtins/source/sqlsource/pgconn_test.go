package sqlsource

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestPostgresPgxSettingsAndQuoting reads PostgreSQL through a DSN written
// for pgx (with the settings pgx and pgxpool took for themselves) by a
// position column whose name needs quoting (unquoted, it would fold to
// lower case and not be found). The DSN's application_name names the
// source's connection on the server.
func TestPostgresPgxSettingsAndQuoting(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, `"Seq_No" bigserial PRIMARY KEY, body text`)
	sep := "&"
	if !strings.Contains(d.dsn, "?") {
		sep = "?"
	}
	app := testkit.Unique(t, "app")
	d.dsn += sep + "statement_cache_capacity=64&default_query_exec_mode=exec&pool_max_conns=8&pool_min_conns=1&application_name=" + app
	d.exec(t, "INSERT INTO "+tbl+" (body) VALUES ('one'), ('two')")
	src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = %q", tbl, "Seq_No"))
	rows := readAll(t, src, 2)
	if string(rows[0]["Seq_No"]) != "1" || string(rows[1]["body"]) != `"two"` {
		t.Fatalf("rows: %v", rows)
	}
	c, err := pgx.Connect(context.Background(), testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d connections named %q, want the source's", n, app)
	}
}

// TestPostgresSessionSettingsPinned: a role's defaults do not change how
// values print: extra_float_digits = 0 would round a float8 to 15 digits,
// IntervalStyle = iso_8601 would print intervals as P1DT2H. The source
// pins both, as postgres_cdc does.
func TestPostgresSessionSettingsPinned(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, "id bigint PRIMARY KEY, f float8, r real, iv interval")
	d.exec(t, "INSERT INTO "+tbl+" VALUES (1, 0.1::float8 + 0.2::float8, 1.2345678, '1 day 2 hours')")
	role := testkit.Unique(t, "sqlrole")
	d.exec(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		d.exec(t, "DROP OWNED BY "+role)
		d.exec(t, "DROP ROLE "+role)
	})
	d.exec(t, "GRANT SELECT ON "+tbl+" TO "+role)
	d.exec(t, "ALTER ROLE "+role+" SET extra_float_digits = 0")
	d.exec(t, "ALTER ROLE "+role+" SET IntervalStyle = 'iso_8601'")
	u, err := url.Parse(d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	d.dsn = u.String()
	src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = \"id\"", tbl))
	rows := readAll(t, src, 1)
	for col, want := range map[string]string{"f": "0.30000000000000004", "r": "1.2345678", "iv": `"1 day 02:00:00"`} {
		if got := string(rows[0][col]); got != want {
			t.Errorf("%s = %s, want %s", col, got, want)
		}
	}
}

// TestPostgresBoxArray: box[]'s elements are separated by ';' (box's
// typdelim), not ',': its literal is not cut at the commas in each box.
func TestPostgresBoxArray(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, "id bigint PRIMARY KEY, b box[], p point[]")
	d.exec(t, "INSERT INTO "+tbl+" VALUES (1, ARRAY[box '((1,1),(0,0))', box '((2,2),(1,1))', NULL], ARRAY[point '(1,2)', point '(3,4)'])")
	src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = \"id\"", tbl))
	rows := readAll(t, src, 1)
	if got, want := string(rows[0]["b"]), `["(1,1),(0,0)","(2,2),(1,1)",null]`; got != want {
		t.Errorf("b = %s, want %s", got, want)
	}
	if got, want := string(rows[0]["p"]), `["(1,2)","(3,4)"]`; got != want {
		t.Errorf("p = %s, want %s", got, want)
	}
}
