package postgrescdc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkCDC measures change events per second from PostgreSQL: the
// same WAL (benchRows inserts of a 5-column row, in transactions of 1000)
// read through this source's slot, and through a second slot by the floor,
// a plain pglogrepl loop that decodes each message with pglogrepl.Parse
// and does nothing else. Both include the server's own decoding. Run with
// -benchtime 1x (make bench); the figures are the events/s metrics.
func BenchmarkCDC(b *testing.B) {
	const benchRows = 200000
	e := newPG(b)
	tbl := e.table("bench", "id int PRIMARY KEY, region text, amount numeric(12,2), note text, updated timestamptz")
	extra := `tables = ["` + tbl + `"]` + "\nsnapshot = false\nbatch.max_events = 1000"
	// Create the source's slot and publication, and the floor's slot, before the writes.
	src := e.source(b, extra)
	if err := src.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	src.Close(context.Background())
	floorSlot := e.slot + "_floor"
	b.Cleanup(func() { e.dropSlot(floorSlot) })
	fc, err := pgconn.Connect(context.Background(), e.dsn+"&replication=database")
	if err != nil {
		b.Fatal(err)
	}
	defer fc.Close(context.Background())
	if _, err := pglogrepl.CreateReplicationSlot(context.Background(), fc, floorSlot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < benchRows; i += 1000 {
		e.exec(fmt.Sprintf("INSERT INTO %s SELECT g, 'eu-west-1', g * 1.25, 'order note ' || g, now() FROM generate_series(%d, %d) g", tbl, i+1, i+1000))
	}
	b.ResetTimer()
	for b.Loop() {
		// The floor.
		start := time.Now()
		if err := pglogrepl.StartReplication(context.Background(), fc, floorSlot, 0, pglogrepl.StartReplicationOptions{
			Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '1'", "publication_names '" + e.slot + "'"}}); err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < benchRows {
			msg, err := fc.ReceiveMessage(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			cd, ok := msg.(*pgproto3.CopyData)
			if !ok || cd.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				b.Fatal(err)
			}
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := m.(*pglogrepl.InsertMessage); ok {
				n++
			}
		}
		floor := float64(n) / time.Since(start).Seconds()

		// This source, from its slot, acknowledging every batch.
		src := e.source(b, extra)
		start = time.Now()
		if err := src.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < benchRows {
			batch, err := src.Read(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			got += len(batch.Messages)
			batch.Ack(nil)
		}
		rate := float64(got) / time.Since(start).Seconds()
		src.Close(context.Background())
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(floor, "floor-events/s")
		b.ReportMetric(100*rate/floor, "%-of-floor")
	}
}
