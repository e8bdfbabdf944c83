package postgres

import (
	"fmt"
	"strings"
	"testing"

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

// TestCDCSameKeyInTwoSpellings: in cdc mode an upsert and a later upsert
// of the same key spelled differently are applied in record order.
func TestCDCSameKeyInTwoSpellings(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id uuid PRIMARY KEY, name text")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"data":{"op":%q,"before":%s,"after":%s}}`, op, before, after)
	}
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
