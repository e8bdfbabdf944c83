package mysql

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/sqlsink"
	"github.com/sluicehq/sluice/runtime/component"
)

func (e *myEnv) maxPacket() int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT @@max_allowed_packet").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *myEnv) count(tbl string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT count(*) FROM " + tbl).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// wantAlone fails unless err reports record i alone, event-permanent,
// its message holding want.
func wantAlone(t *testing.T, err error, i int, want string) {
	t.Helper()
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || re.Errs[i] == nil || component.ClassOf(re.Errs[i]) != component.ClassEventPermanent || !strings.Contains(re.Errs[i].Error(), want) {
		msg := fmt.Sprint(err)
		if len(msg) > 400 {
			msg = msg[:400]
		}
		t.Fatalf("want record %d alone event-permanent saying %q; Write returned (%s) %s", i, want, component.ClassOf(err), msg)
	}
}

// TestRowOverMaxAllowedPacket: a record whose row is longer than the
// server's max_allowed_packet (the server answers 1153 and closes the
// connection) can never be written: it goes to the dead-letter queue
// alone, saying what to raise, and the other rows are written. A value
// short enough raw but not once escaped (quotes are doubled) counts
// escaped.
func TestRowOverMaxAllowedPacket(t *testing.T) {
	e := newMy(t)
	maxPacket := e.maxPacket()
	tbl := e.table("id int PRIMARY KEY, body longtext")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", body = \"$.body\" }", tbl))
	open(t, s)
	for name, big := range map[string]string{
		"long":    strings.Repeat("x", maxPacket+1024),
		"escaped": strings.Repeat("'", maxPacket/2+1024),
	} {
		t.Run(name, func(t *testing.T) {
			e.exec("DELETE FROM " + tbl)
			err := write(t, s, `{"id":1,"body":"a"}`, fmt.Sprintf(`{"id":2,"body":%q}`, big), `{"id":3,"body":"c"}`)
			wantAlone(t, err, 1, "max_allowed_packet")
			if n := e.count(tbl); n != 2 {
				t.Fatalf("%d rows written, want 2", n)
			}
		})
	}
}

// TestRowsTogetherOverMaxAllowedPacket: rows that fit alone but not in
// one statement are written in several.
func TestRowsTogetherOverMaxAllowedPacket(t *testing.T) {
	e := newMy(t)
	maxPacket := e.maxPacket()
	tbl := e.table("id int PRIMARY KEY, body longtext")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", body = \"$.body\" }", tbl))
	open(t, s)
	err := write(t, s,
		fmt.Sprintf(`{"id":1,"body":%q}`, strings.Repeat("a", 4<<20-1024)),
		fmt.Sprintf(`{"id":2,"body":%q}`, strings.Repeat("b", maxPacket-2<<20)))
	if err != nil {
		msg := err.Error()
		if len(msg) > 400 {
			msg = msg[:400]
		}
		t.Fatalf("Write: (%s) %s", component.ClassOf(err), msg)
	}
	if n := e.count(tbl); n != 2 {
		t.Fatalf("%d rows written, want 2", n)
	}
}

// TestServerRefusesLongPacket: when the sink's own check misses (the
// server's max_allowed_packet lowered after the sink connected, here the
// sink told a larger one), the server refuses the row (1153) and closes
// the connection mid-transaction. The row is dead-lettered alone, the
// other rows are written again on another connection, and the next batch
// is written.
func TestServerRefusesLongPacket(t *testing.T) {
	e := newMy(t)
	maxPacket := e.maxPacket()
	tbl := e.table("id int PRIMARY KEY, body longtext")
	cfg := sqlsink.NewConfig()
	cfg.DSN = component.Secret(e.dsn)
	cfg.Table = tbl
	cfg.Columns = map[string]string{"id": "$.id", "body": "$.body"}
	d := &dialect{cfg: cfg}
	s := sqlsink.New(cfg, d, zerolog.Nop(), "mysql sink")
	open(t, s)
	d.maxPacket = 1 << 30
	// Just over the server's limit, so that the server has read the whole
	// packet when it refuses it and its 1153 reaches the client.
	big := strings.Repeat("x", maxPacket+1024)
	err := write(t, s, `{"id":1,"body":"a"}`, fmt.Sprintf(`{"id":2,"body":%q}`, big), `{"id":3,"body":"c"}`)
	wantAlone(t, err, 1, "max_allowed_packet")
	if n := e.count(tbl); n != 2 {
		t.Fatalf("%d rows written, want 2", n)
	}
	if err := write(t, s, `{"id":4,"body":"d"}`); err != nil {
		t.Fatalf("the next batch: %v", err)
	}
	if n := e.count(tbl); n != 3 {
		t.Fatalf("%d rows written, want 3", n)
	}
}

// TestClassifyPacketErrors: a packet too long, refused by the server
// (1153), by the driver (ErrPktTooLarge) or by the sink's own check, is
// the record's and says what to raise.
func TestClassifyPacketErrors(t *testing.T) {
	d := &dialect{where: "db"}
	for _, err := range []error{
		&mysql.MySQLError{Number: 1153, Message: "Got a packet bigger than 'max_allowed_packet' bytes"},
		fmt.Errorf("exec: %w", mysql.ErrPktTooLarge),
		&packetError{size: 20 << 20, limit: 16 << 20},
	} {
		c := d.Classify(err)
		if component.ClassOf(c) != component.ClassEventPermanent || !strings.Contains(strings.ToLower(c.Error()), "maxallowedpacket") && !strings.Contains(c.Error(), "max_allowed_packet") {
			t.Errorf("%v: (%s) %v, want event-permanent naming max_allowed_packet", err, component.ClassOf(c), c)
		}
	}
}

// TestUpsertSameKeyInTwoSpellings: two rows of one batch with keys the
// collation holds equal ("abc" and "ABC" under a case-insensitive one)
// pass deduplication, which compares text; unlike PostgreSQL's ON
// CONFLICT, ON DUPLICATE KEY UPDATE applies the rows of one statement in
// order, so the last write wins without an error.
func TestUpsertSameKeyInTwoSpellings(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY, name varchar(20)")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
	open(t, s)
	if err := write(t, s, `{"id":"abc","name":"first"}`, `{"id":"ABC","name":"second"}`); err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	if got := e.dump(tbl); got != `id="abc"|name="second"` {
		t.Fatal(got)
	}
}

// A cdc batch wrote its deletes before its upserts, which reversed a
// create of a key and a later delete of the same key in another spelling
// (a case-insensitive collation holds "abc" and "ABC" equal): the row the
// source deleted was left in the table. Deletes and upserts now run in
// record order.
func TestCDCDeleteOfTheKeyInAnotherSpelling(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY, name varchar(20)")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	err := write(t, s,
		ev("c", "null", `{"id":"abc","name":"gone"}`),
		ev("d", `{"id":"ABC"}`, "null"),
		ev("c", "null", `{"id":"def","name":"kept"}`),
		ev("d", `{"id":"DEF"}`, "null"),
		ev("c", "null", `{"id":"def","name":"back"}`))
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	if got := e.dump(tbl); got != `id="def"|name="back"` {
		t.Fatalf("got %s, want only def, back", got)
	}
}

// Groups wrote each column set where its first row stood. Cdc mode, one key in two spellings (case-insensitive collation),
// the later change giving fewer columns, after another key's change of
// those columns: the later change must win.
func TestCDCSpellingsWithDifferentColumns(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY, name varchar(20), n int")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	err := write(t, s,
		ev("c", "null", `{"id":"xyz","name":"other"}`),
		ev("c", "null", `{"id":"abc","name":"second","n":2}`),
		ev("u", "null", `{"id":"ABC","name":"third"}`))
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	if got := e.dump(tbl); !strings.Contains(got, `name="third"`) {
		t.Fatalf("got %s, want abc named third (its last change)", got)
	}
}
