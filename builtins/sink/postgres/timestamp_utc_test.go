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

// TestTimestampWithoutZoneTakesUTCOfOtherSpellings: an instant spelled
// with a space for the T (Python's str(datetime), RFC 3339's own
// allowance), an offset without its colon (strftime's %z) or of hours
// alone (PostgreSQL's output) went to timestamp's input function as it
// was, which drops the offset without a word: the stored wall clock was
// off by it.
func TestTimestampWithoutZoneTakesUTCOfOtherSpellings(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, at timestamp")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"", tbl))
	open(t, s)
	vals := []string{"2026-01-02 03:04:05+02:00", "2026-01-02T03:04:05+0200", "2026-01-02T03:04:05+02", "2026-01-02 03:04:05.5+02", "2026-01-02t03:04:05-00:30"}
	want := []string{"2026-01-02 01:04:05", "2026-01-02 01:04:05", "2026-01-02 01:04:05", "2026-01-02 01:04:05.5", "2026-01-02 03:34:05"}
	var payloads []string
	for i, v := range vals {
		payloads = append(payloads, fmt.Sprintf(`{"data":{"id":%d,"at":%q}}`, i, v))
	}
	if err := write(t, s, payloads...); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		var at string
		if err := e.db.QueryRow(context.Background(), "SELECT rtrim(rtrim(to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), '0'), '.') FROM "+tbl+" WHERE id = $1", i).Scan(&at); err != nil {
			t.Fatal(err)
		}
		if at != want[i] {
			t.Errorf("timestamp column holds %s for %s, want the UTC digits %s", at, v, want[i])
		}
	}
}
