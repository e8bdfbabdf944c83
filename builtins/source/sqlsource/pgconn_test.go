package sqlsource

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestPostgresPgxSettingsAndQuoting reads PostgreSQL through a DSN written
// for pgx (with the settings pgx and pgxpool took for themselves) by a
// position column whose name needs quoting (unquoted, it would fold to
// lower case and not be found).
func TestPostgresPgxSettingsAndQuoting(t *testing.T) {
	d := pgDB(t)
	tbl := d.table(t, `"Seq_No" bigserial PRIMARY KEY, body text`)
	sep := "&"
	if !strings.Contains(d.dsn, "?") {
		sep = "?"
	}
	d.dsn += sep + "statement_cache_capacity=64&default_query_exec_mode=exec&pool_max_conns=8&pool_min_conns=1"
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
}
