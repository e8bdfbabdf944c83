package postgrescdc

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestChangesOfADroppedTableAreStreamed drops a table of the captured
// schema before the stream reached its changes (the task was stopped, or
// behind): logical decoding still sends them, described as the table was,
// and they must be emitted, with the key the stream describes, and the
// stream go on. The source looked the table up in the catalog, found it
// missing and stopped the task (task-permanent), and did so again at each
// start: the slot could never move past those changes.
func TestChangesOfADroppedTableAreStreamed(t *testing.T) {
	e := newPG(t)
	schema := e.slot
	e.exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { e.db.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	e.exec("CREATE TABLE " + schema + ".kept (id int PRIMARY KEY)")
	ctx := context.Background()
	src := e.source(t, `schema = "`+schema+`"`+"\nsnapshot = false")
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	src.Close(ctx)
	e.exec("CREATE TABLE " + schema + ".staging (id int PRIMARY KEY, v text)")
	e.exec("INSERT INTO " + schema + ".staging VALUES (7, 'x')")
	e.exec("DROP TABLE " + schema + ".staging")
	e.exec("INSERT INTO " + schema + ".kept VALUES (1)")

	src = e.source(t, `schema = "`+schema+`"`+"\nsnapshot = false")
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	var got []changeEvent
	deadline := time.Now().Add(testkit.Scale(testkit.DefaultWait))
	for len(got) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("events: %+v", got)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		b, err := src.Read(rctx)
		cancel()
		if err != nil {
			if component.ClassOf(err) == component.ClassTaskPermanent {
				t.Fatalf("the stream stopped at the changes of a dropped table: %v", err)
			}
			continue
		}
		for _, m := range b.Messages {
			got = append(got, decodeEvent(t, m.Payload, m.Key))
		}
		b.Ack(nil)
	}
	if ev := got[0]; ev.Subject != schema+".staging" || ev.Data.Op != "c" || str(ev.Data.After["v"]) != "x" || ev.key != `{"id":7}` {
		t.Fatalf("the dropped table's insert: %+v (key %s)", ev, ev.key)
	}
	if ev := got[1]; ev.Subject != schema+".kept" || str(ev.Data.After["id"]) != "1" {
		t.Fatalf("the insert after it: %+v", ev)
	}
}
