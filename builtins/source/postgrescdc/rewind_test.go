package postgrescdc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRewindDuringSnapshotReadsNackedChunkAgain nacks a batch of the
// snapshot and rewinds (a blocked task resumed): the nacked rows must be
// read again, and the snapshot's progress must go on being checkpointed.
// Rewind used to act on the replication stream only, so during the
// snapshot it did nothing: the nacked rows never came again (until a
// restart) and the nack froze every position for the life of the process.
func TestRewindDuringSnapshotReadsNackedChunkAgain(t *testing.T) {
	e := newPG(t)
	tbl := e.table("rw", "id int PRIMARY KEY")
	e.exec("INSERT INTO " + tbl + " SELECT generate_series(1, 40)")
	src := e.source(t, `tables = ["`+tbl+`"]`+"\nsnapshot_chunk = 5\nbatch = { max_events = 5 }")
	ctx := context.Background()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	b, err := src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nacked := map[string]bool{}
	for _, m := range b.Messages {
		nacked[decodeEvent(t, m.Payload, m.Key).ID] = true
	}
	b.Ack(errors.New("the sink failed"))
	if err := src.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	again := map[string]bool{}
	rows := map[string]bool{}
	deadline := time.Now().Add(testkit.Scale(testkit.DefaultWait))
	for len(again) < len(nacked) || len(rows) < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("after the rewind: %d of the %d nacked rows read again, %d of 40 rows read", len(again), len(nacked), len(rows))
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		b, err := src.Read(rctx)
		cancel()
		if err != nil {
			continue // the rewind's reconnect, or nothing yet
		}
		for _, m := range b.Messages {
			ev := decodeEvent(t, m.Payload, m.Key)
			if ev.Data.Op != "r" {
				continue
			}
			rows[str(ev.Data.After["id"])] = true
			if nacked[ev.ID] {
				again[ev.ID] = true
			}
		}
		b.Ack(nil)
	}
	testkit.WaitFor(t, "the snapshot's end to be checkpointed", func() bool {
		raw, err := readCheckpoint(e.state, e.slot)
		if err != nil {
			return false
		}
		var doc struct{ Data state }
		return json.Unmarshal(raw, &doc) == nil && doc.Data.SnapshotDone && len(doc.Data.Tables) == 0
	})
}
