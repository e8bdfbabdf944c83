package postgres

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestUpsertSameKeyInTwoSpellings writes batches holding one key spelled
// two ways in JSON that the column type reads as one value (a uuid in
// upper and lower case, an int with a leading space, a timestamp with Z
// and +00:00). Deduplication compares text and keeps both rows, and one
// ON CONFLICT DO UPDATE cannot update a row twice (SQLSTATE 21000): the
// batch must be written row by row in order, the last write winning, not
// retried as it is forever.
func TestUpsertSameKeyInTwoSpellings(t *testing.T) {
	for name, c := range map[string]struct{ typ, k1, k2 string }{
		"uuid case":      {"uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, `"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"`},
		"int with space": {"int", `1`, `" 1"`},
		"timestamp zone": {"timestamptz", `"2026-01-02T03:04:05Z"`, `"2026-01-02T03:04:05+00:00"`},
	} {
		t.Run(name, func(t *testing.T) {
			e := newPG(t)
			tbl := e.table("id " + c.typ + " PRIMARY KEY, name text, n int")
			s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\", n = \"$.n\" }", tbl))
			open(t, s)
			err := write(t, s,
				fmt.Sprintf(`{"id":%s,"name":"first","n":1}`, c.k1),
				fmt.Sprintf(`{"id":%s,"name":"second","n":2}`, c.k2))
			if err != nil {
				t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
			}
			if got := e.dump(tbl, "id"); !strings.Contains(got, `"name":"second","n":2}`) || strings.Count(got, `"id"`) != 1 {
				t.Fatalf("got %s, want the one row with name second", got)
			}
		})
	}
}

// ev is a change event of the cdc mode's default shape.
func ev(op, before, after string) string {
	return fmt.Sprintf(`{"data":{"op":%q,"before":%s,"after":%s}}`, op, before, after)
}

// TestCDCSameKeyInTwoSpellings: in cdc mode an upsert and a later upsert
// of the same key spelled differently are applied in record order.
func TestCDCSameKeyInTwoSpellings(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id uuid PRIMARY KEY, name text")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	err := write(t, s,
		ev("c", "null", `{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"first"}`),
		ev("u", "null", `{"id":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11","name":"second"}`),
		ev("c", "null", `{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"other"}`))
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	want := `[{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"second"}, {"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"other"}]`
	if got := e.dump(tbl, "id"); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A cdc batch wrote its deletes before its upserts, which reversed a
// create of a key and a later delete of the same key spelled differently:
// the row the source deleted was left in the table, and nothing said so.
// Deletes and upserts now run in record order.
func TestCDCDeleteOfTheKeyInAnotherSpelling(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id uuid PRIMARY KEY, name text")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	err := write(t, s,
		ev("c", "null", `{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"gone"}`),
		ev("d", `{"id":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}`, "null"),
		ev("c", "null", `{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"kept"}`),
		ev("d", `{"id":"B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}`, "null"),
		ev("c", "null", `{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"back"}`))
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	want := `[{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"back"}]`
	if got := e.dump(tbl, "id"); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestIndexRowTooLarge: a value too large for a btree index (SQLSTATE
// 54000, program_limit_exceeded) fails on every try: the record goes to
// the dead-letter queue alone and the other rows are written.
func TestIndexRowTooLarge(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, name text")
	e.exec("CREATE INDEX ON " + tbl + " (name)")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
	open(t, s)
	// Pseudo-random text does not compress below the btree limit (about
	// 2.7 kB).
	var b strings.Builder
	x := uint32(1)
	for b.Len() < 10000 {
		x = x*1664525 + 1013904223
		b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[x>>26%36])
	}
	err := write(t, s, `{"id":1,"name":"a"}`, fmt.Sprintf(`{"id":2,"name":%q}`, b.String()), `{"id":3,"name":"c"}`)
	wantAlone(t, err, 1, "SQLSTATE 54000")
	if got := e.dump(tbl, "id"); got != `[{"id":1,"name":"a"}, {"id":3,"name":"c"}]` {
		t.Fatal(got)
	}
}

// TestTriggerErrors: a trigger refuses a row with the SQLSTATE the row
// names. The codes that are about the row (a RAISE EXCEPTION, a failed
// ASSERT, a routine's error, a check option, a limit) dead-letter that
// record alone and the others are written; the transient ones (a
// serialization failure, a deadlock, insufficient resources, a shutdown,
// a lost connection) fail the batch as retryable, nothing of it written.
func TestTriggerErrors(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, name text")
	fn := tbl + "_refuse"
	e.exec(`CREATE FUNCTION ` + fn + `() RETURNS trigger AS $$
BEGIN
	IF NEW.name LIKE 'refuse %' THEN RAISE EXCEPTION 'refused: %', NEW.name USING ERRCODE = substr(NEW.name, 8); END IF;
	RETURN NEW;
END $$ LANGUAGE plpgsql`)
	t.Cleanup(func() { e.exec("DROP FUNCTION IF EXISTS " + fn + " CASCADE") })
	e.exec("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON " + tbl + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
	open(t, s)
	for _, code := range []string{"P0001", "P0004", "54000", "54001", "44000", "2F005", "38000", "39P01", "27000", "20000", "09000", "21000"} {
		t.Run("row "+code, func(t *testing.T) {
			e.exec("TRUNCATE " + tbl)
			err := write(t, s, `{"id":1,"name":"a"}`, fmt.Sprintf(`{"id":2,"name":"refuse %s"}`, code), `{"id":3,"name":"c"}`)
			wantAlone(t, err, 1, "SQLSTATE "+code)
			if got := e.dump(tbl, "id"); got != `[{"id":1,"name":"a"}, {"id":3,"name":"c"}]` {
				t.Fatal(got)
			}
		})
	}
	for _, code := range []string{"40001", "40P01", "53100", "53200", "53300", "55P03", "57014", "57P01", "08006"} {
		t.Run("batch "+code, func(t *testing.T) {
			e.exec("TRUNCATE " + tbl)
			err := write(t, s, `{"id":1,"name":"a"}`, fmt.Sprintf(`{"id":2,"name":"refuse %s"}`, code), `{"id":3,"name":"c"}`)
			if err == nil || component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), "SQLSTATE "+code) {
				t.Fatalf("Write: (%s) %v, want the batch retryable", component.ClassOf(err), err)
			}
			if got := e.dump(tbl, "id"); got != `[]` {
				t.Fatalf("written: %s", got)
			}
		})
	}
}

// wantAlone fails unless err reports record i alone, event-permanent,
// its message holding want.
func wantAlone(t *testing.T, err error, i int, want string) {
	t.Helper()
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || re.Errs[i] == nil || component.ClassOf(re.Errs[i]) != component.ClassEventPermanent || !strings.Contains(re.Errs[i].Error(), want) {
		t.Fatalf("want record %d alone event-permanent saying %q; Write returned (%s) %v", i, want, component.ClassOf(err), err)
	}
}

// TestSQLSTATEClasses pins the classification table of
// docs/connectors/postgres.md.
func TestSQLSTATEClasses(t *testing.T) {
	d := &dialect{where: "db"}
	for class, codes := range map[component.Class][]string{
		component.ClassEventPermanent: {"09000", "20000", "21000", "22001", "22P02", "23505", "23514", "27000", "2F005", "38001", "39P01", "44000", "54000", "54001", "P0001", "P0002", "P0003", "P0004"},
		component.ClassTaskPermanent:  {"42501", "42703", "42P01", "42804", "28000", "28P01", "3D000", "25006"},
		component.ClassRetryable:      {"08006", "08001", "40001", "40P01", "53100", "53200", "53300", "55P03", "57014", "57P01", "57P03", "58030", "XX000", ""},
	} {
		for _, code := range codes {
			err := d.Classify(&pgconn.PgError{Code: code, Message: "m"})
			if got := component.ClassOf(err); got != class {
				t.Errorf("SQLSTATE %q: %s, want %s", code, got, class)
			}
		}
	}
}

// Groups wrote each column set where its first row stood. Upsert mode, one key in two spellings, the two records giving
// different columns (n absent from the later one), with another key's row of
// the later record's columns first in the batch: the later record must win.
func TestUpsertSpellingsWithDifferentColumns(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id uuid PRIMARY KEY, name text, n int")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\", n = \"$.n\" }", tbl))
	open(t, s)
	err := write(t, s,
		`{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"other"}`,
		`{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","name":"second","n":2}`,
		`{"id":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11","name":"third"}`)
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	if got := e.dump(tbl, "id"); !strings.Contains(got, `"name":"third"`) {
		t.Fatalf("got %s, want the a0ee row named third (the last record for it)", got)
	}
}
