package postgrescdc

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestOutboxMarksWaitForEarlierBatches pins what the mysql_cdc source got
// wrong twice (a snapshot table committed as done while its last batches
// were in flight; a transaction of other tables, read while changes were
// in flight, never committed): a mark, snapshot progress or a transaction
// without changes of the captured tables, commits exactly when every batch
// opened before it was acknowledged, not earlier and not never.
func TestOutboxMarksWaitForEarlierBatches(t *testing.T) {
	o := newOutbox(2)
	var committed []mark
	o.onMark = func(m mark) { committed = append(committed, m) }
	add := func(lane string) {
		o.mu.Lock()
		b := o.batch(lane)
		b.recs = append(b.recs, rec{})
		o.added(b)
		o.mu.Unlock()
	}
	read := func() component.Batch {
		t.Helper()
		b, err := o.read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// A snapshot table whose rows fill its last batch exactly: its end is
	// marked after a full (sealed) batch, with nothing open.
	add("s.t")
	add("s.t")
	o.addMark(mark{progress: &progress{Table: "s.t", Done: true}})
	snap := read()
	if len(committed) != 0 {
		t.Fatalf("the table's end committed before its rows were acknowledged: %+v", committed)
	}
	snap.Ack(nil)
	if len(committed) != 1 || committed[0].progress == nil || !committed[0].progress.Done {
		t.Fatalf("the table's end not committed once its rows were: %+v", committed)
	}

	// A change of ours in flight, then a transaction of other tables only.
	o.setTxn(true, nil)
	add("s.t")
	o.setTxn(false, &mark{lsn: 100})
	ours := read()
	o.setTxn(true, nil)
	o.setTxn(false, &mark{lsn: 200}) // nothing of ours in it
	if p := o.position(); p != 0 {
		t.Fatalf("confirmed %d while a change before it is in flight", p)
	}
	ours.Ack(nil)
	if p := o.position(); p != 200 {
		t.Fatalf("confirmed %d once everything was acknowledged, want 200 (past the other tables' transaction)", p)
	}
	// Nothing in flight: another such transaction commits at once.
	o.setTxn(true, nil)
	o.setTxn(false, &mark{lsn: 300})
	if p := o.position(); p != 300 {
		t.Fatalf("confirmed %d with nothing in flight, want 300", p)
	}
}
