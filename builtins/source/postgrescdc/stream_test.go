package postgrescdc

import (
	"context"
	"testing"
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
