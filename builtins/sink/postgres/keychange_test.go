package postgres

import (
	"fmt"
	"testing"
)

// TestCDCKeyChangingUpdate: an update that changes the primary key
// (UPDATE t SET id = 2 WHERE id = 1) is, as postgres_cdc and mysql_cdc emit
// it, op "u" with the old key in before and the new row in after. Applied
// in cdc mode the table ends as the source's: the old row went. It stayed
// (review). In one batch too, where deduplication by key meets the deletes:
// two rows swapping keys, and a key freed by one update and reused by a
// later insert.
func TestCDCKeyChangingUpdate(t *testing.T) {
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	e := newPG(t)
	t.Run("one by one", func(t *testing.T) {
		tbl := e.table("id int PRIMARY KEY, name text")
		s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
		open(t, s)
		if err := write(t, s, ev("c", "null", `{"id":1,"name":"a"}`)); err != nil {
			t.Fatal(err)
		}
		if err := write(t, s, ev("u", `{"id":1}`, `{"id":2,"name":"a"}`)); err != nil {
			t.Fatal(err)
		}
		if got, want := e.dump(tbl, "id"), `[{"id":2,"name":"a"}]`; got != want {
			t.Fatalf("after a key-changing update the table holds\n got  %s\n want %s", got, want)
		}
	})
	t.Run("one batch", func(t *testing.T) {
		tbl := e.table("id int PRIMARY KEY, name text")
		s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
		open(t, s)
		if err := write(t, s, ev("c", "null", `{"id":1,"name":"a"}`), ev("c", "null", `{"id":2,"name":"b"}`)); err != nil {
			t.Fatal(err)
		}
		// Swap 1 and 2 through 3, as a transaction would; then 1 -> 4 and
		// a new row 1.
		if err := write(t, s,
			ev("u", `{"id":1}`, `{"id":3,"name":"a"}`),
			ev("u", `{"id":2}`, `{"id":1,"name":"b"}`),
			ev("u", `{"id":3}`, `{"id":2,"name":"a"}`),
			ev("u", `{"id":1}`, `{"id":4,"name":"b"}`),
			ev("c", "null", `{"id":1,"name":"new"}`),
		); err != nil {
			t.Fatal(err)
		}
		if got, want := e.dump(tbl, "id"), `[{"id":1,"name":"new"}, {"id":2,"name":"a"}, {"id":4,"name":"b"}]`; got != want {
			t.Fatalf("after key-changing updates in one batch the table holds\n got  %s\n want %s", got, want)
		}
	})
}
