package postgrescdc

import (
	"context"
	"testing"
)

// TestReplicaIdentityIndexKeysSnapshotRows captures a table without a
// primary key whose replica identity is a unique index: its snapshot rows
// must carry the same key as its streamed changes (the replica identity,
// docs/connectors/cdc.md), or order = "key" sends a row's snapshot read
// and its later changes to different workers, and the stale read may be
// applied last. Snapshot rows had a null key.
func TestReplicaIdentityIndexKeysSnapshotRows(t *testing.T) {
	e := newPG(t)
	tbl := e.table("ident", "code text NOT NULL, v int")
	e.exec("CREATE UNIQUE INDEX " + tbl + "_code ON " + tbl + " (code)")
	e.exec("ALTER TABLE " + tbl + " REPLICA IDENTITY USING INDEX " + tbl + "_code")
	e.exec("INSERT INTO " + tbl + " VALUES ('a', 1), ('b', 2)")
	src := e.source(t, `tables = ["`+tbl+`"]`+"\nsnapshot_chunk = 1")
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	for _, want := range []string{`{"code":"a"}`, `{"code":"b"}`} {
		if ev := c.next(); ev.Data.Op != "r" || ev.key != want {
			t.Fatalf("snapshot row: key %s, want %s (%+v)", ev.key, want, ev.Data.After)
		}
	}
	e.exec("UPDATE " + tbl + " SET v = 3 WHERE code = 'a'")
	if ev := c.next(); ev.Data.Op != "u" || ev.key != `{"code":"a"}` {
		t.Fatalf("update: key %s (%+v)", ev.key, ev.Data.After)
	}
}
