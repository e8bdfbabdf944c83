package sqlsource

import (
	"context"
	"fmt"
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
	src := d.source(t, t.TempDir(), fmt.Sprintf("table = %q\nincrementing_column = %q", tbl, "Seq_No"))
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
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
