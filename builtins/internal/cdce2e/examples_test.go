package cdce2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

func pipeline(name string) string {
	p, _ := filepath.Abs(filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", name))
	return p
}

// TestExampleCDCToStdout runs testdata/pipelines/postgres-cdc-stdout.toml.
func TestExampleCDCToStdout(t *testing.T) {
	s := connect(t)
	tbl := s.slot + "_orders"
	s.pgExec(t, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, region text, amount numeric(12,2))")
	t.Cleanup(func() { s.pgExec(t, "DROP TABLE IF EXISTS "+tbl) })
	p := testkit.StartSluice(t, testkit.ProcOptions{Env: []string{"PG_DSN=" + s.pgDSN, "PG_TABLE=public." + tbl, "PG_SLOT=" + s.slot}},
		"run", "--state-dir", t.TempDir(), pipeline("postgres-cdc-stdout.toml"))
	p.WaitLog(t, "streaming changes")
	s.pgExec(t, "INSERT INTO "+tbl+" VALUES (7, 'eu', 12.50)")
	p.WaitLog(t, `"op":"c","before":null,"after":{"id":7,"region":"eu","amount":"12.50"}`)
	p.Stop(t)
}

// TestExampleSQLIncremental runs testdata/pipelines/sql-incremental.toml:
// MariaDB rows polled by timestamp and id, upserted into PostgreSQL.
func TestExampleSQLIncremental(t *testing.T) {
	s := connect(t)
	src, dst := s.slot+"_src", s.slot+"_copy"
	s.myExec(t, "CREATE TABLE "+src+" (id int PRIMARY KEY, region varchar(20), updated datetime(6))")
	s.pgExec(t, "CREATE TABLE "+dst+" (id int PRIMARY KEY, region text, updated timestamptz)")
	t.Cleanup(func() {
		s.my.Exec("DROP TABLE IF EXISTS " + src)
		s.pgExec(t, "DROP TABLE IF EXISTS "+dst)
	})
	s.myExec(t, "INSERT INTO "+src+" VALUES (1, 'eu', '2026-01-01 00:00:01'), (2, 'us', '2026-01-01 00:00:02')")
	p := testkit.StartSluice(t, testkit.ProcOptions{Env: []string{"MARIADB_DSN=" + s.myDSN, "SQL_TABLE=" + src, "PG_DSN=" + s.pgDSN, "PG_TABLE=" + dst}},
		"run", "--state-dir", t.TempDir(), pipeline("sql-incremental.toml"))
	s.myExec(t, "UPDATE "+src+" SET region = 'ap', updated = '2026-01-01 00:00:03' WHERE id = 1")
	want := "1|ap|2026-01-01 00:00:03+00,2|us|2026-01-01 00:00:02+00"
	var got string
	testkit.WaitFor(t, "the rows copied into PostgreSQL", func() bool {
		var v *string
		s.pg.QueryRow(t.Context(), fmt.Sprintf("SELECT string_agg(id || '|' || region || '|' || (updated AT TIME ZONE 'UTC')::text || '+00', ',' ORDER BY id) FROM %s", dst)).Scan(&v)
		if v != nil {
			got = *v
		}
		return got == want
	})
	p.Stop(t)
}
