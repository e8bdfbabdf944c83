package postgrescdc

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestInsertUpdateDeleteRollback streams a table's changes: an insert, an
// update, a delete, and a rolled-back transaction that emits nothing.
func TestInsertUpdateDeleteRollback(t *testing.T) {
	e := newPG(t)
	tbl := e.table("orders", "id bigint PRIMARY KEY, region text, amount numeric(12,2)")
	src := e.source(t, `tables = ["`+tbl+`"]`)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	e.exec("INSERT INTO " + tbl + " VALUES (1, 'eu', 10.50)")
	e.exec("UPDATE " + tbl + " SET amount = 11 WHERE id = 1")
	tx, err := e.db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(context.Background(), "INSERT INTO "+tbl+" VALUES (2, 'us', 1)")
	tx.Rollback(context.Background())
	e.exec("DELETE FROM " + tbl + " WHERE id = 1")
	e.exec("INSERT INTO " + tbl + " VALUES (3, 'ap', 3)")

	ev := c.next()
	if ev.Data.Op != "c" || str(ev.Data.After["region"]) != "eu" || str(ev.Data.After["amount"]) != "10.50" || ev.Data.Before != nil || ev.key != `{"id":1}` {
		t.Fatalf("insert: %+v", ev)
	}
	if ev.Subject != "public."+tbl || ev.Data.Source["table"] != tbl || ev.Data.Source["snapshot"] != false {
		t.Fatalf("insert: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "u" || str(ev.Data.After["amount"]) != "11.00" || ev.Data.Before != nil {
		t.Fatalf("update: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "d" || ev.Data.After != nil || str(ev.Data.Before["id"]) != "1" || len(ev.Data.Before) != 1 || ev.key != `{"id":1}` {
		t.Fatalf("delete: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "c" || str(ev.Data.After["id"]) != "3" {
		t.Fatalf("the rolled-back insert was emitted, or the last insert is missing: %+v", ev)
	}
}

// TestConfirmedPositionAdvances checks that the slot's confirmed position
// follows acknowledged transactions while the source runs (the standby
// heartbeats), and that an idle slot is moved past WAL other tables wrote.
func TestConfirmedPositionAdvances(t *testing.T) {
	e := newPG(t)
	tbl := e.table("adv", "id int PRIMARY KEY")
	other := e.table("other", "id int PRIMARY KEY")
	src := e.source(t, `tables = ["`+tbl+`"]`+"\nstatus_interval = \"50ms\"")
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	confirmed := func() uint64 {
		var s string
		e.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&s)
		v, _ := parseLSN(s)
		return v
	}
	currentLSN := func() uint64 {
		var s string
		e.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s)
		v, _ := parseLSN(s)
		return v
	}
	e.exec("INSERT INTO " + tbl + " VALUES (1)")
	c.next()
	target := currentLSN()
	testkit.WaitFor(t, "the slot to confirm the acknowledged insert", func() bool { return confirmed() >= target })
	// WAL written by a table outside the publication: the idle slot must not pin it.
	e.exec("INSERT INTO " + other + " SELECT generate_series(1, 1000)")
	target = currentLSN()
	testkit.WaitFor(t, "the idle slot to move past other tables' WAL", func() bool { return confirmed() >= target })
}
