package postgres

import (
	"context"
	"fmt"
	"testing"
)

// TestTimestampWithoutZoneTakesUTC: "Timestamps take RFC 3339": an RFC 3339
// value with an offset names an instant, and a timestamp column without
// time zone takes its UTC digits (the CDC convention, and the mysql sink's
// for DATETIME). The text went to timestamp's input function, which drops
// the offset: the stored wall clock was off by it (review).
func TestTimestampWithoutZoneTakesUTC(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, at timestamp")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"", tbl))
	open(t, s)
	if err := write(t, s, `{"data":{"id":1,"at":"2026-01-02T03:04:05+02:00"}}`); err != nil {
		t.Fatal(err)
	}
	var at string
	if err := e.db.QueryRow(context.Background(), "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS') FROM "+tbl+" WHERE id = 1").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-02 01:04:05"; at != want {
		t.Fatalf("timestamp column holds %s for 2026-01-02T03:04:05+02:00, want the UTC digits %s", at, want)
	}
}
