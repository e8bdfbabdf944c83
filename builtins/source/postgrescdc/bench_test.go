package postgrescdc

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkCDC measures change events per second from PostgreSQL: the
// same WAL (benchRows inserts of a 5-column row, in transactions of 1000)
// read through this source, and by the floor, a plain pglogrepl loop that
// decodes each message with pglogrepl.Parse and does nothing else. Both
// include the server's own logical decoding, which is most of the work.
//
// Each run reads through a slot of its own (a slot is read once: the
// source confirms what it read), all created before the writes: three of
// the floor and three of the source, in the order floor, source, source,
// floor, floor, source, so that neither always meets the same load; the
// figures are the medians. The source's clock starts once Open returned
// (the slot and publication checked, the checkpoint read; reported apart
// as open_ms), as the floor's starts when it asks for the stream. Run with
// -benchtime 1x (make bench).
func BenchmarkCDC(b *testing.B) {
	const benchRows, rounds = 200000, 3
	e := newPG(b)
	tbl := e.table("bench", "id int PRIMARY KEY, region text, amount numeric(12,2), note text, updated timestamptz")
	extra := func(slot string) string {
		return fmt.Sprintf("tables = [%q]\nsnapshot = false\nbatch.max_events = 1000\nslot = %q\npublication = %q\n", tbl, slot, e.slot)
	}
	// Every slot, and the publication, before the writes.
	var srcSlots, floorSlots []string
	for i := range rounds {
		slot := fmt.Sprintf("%s_b%d", e.slot, i)
		b.Cleanup(func() { e.dropSlot(slot) })
		src := e.sourceConfig(b, extra(slot))
		if err := src.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		src.Close(context.Background())
		srcSlots = append(srcSlots, slot)
	}
	for i := range rounds {
		slot := fmt.Sprintf("%s_f%d", e.slot, i)
		b.Cleanup(func() { e.dropSlot(slot) })
		fc, err := pgconn.Connect(context.Background(), e.dsn+"&replication=database")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pglogrepl.CreateReplicationSlot(context.Background(), fc, slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}); err != nil {
			b.Fatal(err)
		}
		fc.Close(context.Background())
		floorSlots = append(floorSlots, slot)
	}
	for i := 0; i < benchRows; i += 1000 {
		e.exec(fmt.Sprintf("INSERT INTO %s SELECT g, 'eu-west-1', g * 1.25, 'order note ' || g, now() FROM generate_series(%d, %d) g", tbl, i+1, i+1000))
	}

	// CPU time of this process per event, the lowest of each side's runs
	// (the server's decoding is not in it): unlike the rates, it hardly
	// moves with the machine's load.
	var floorCPU, sourceCPU time.Duration
	lowest := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	floorRound := func(slot string) float64 {
		fc, err := pgconn.Connect(context.Background(), e.dsn+"&replication=database")
		if err != nil {
			b.Fatal(err)
		}
		defer fc.Close(context.Background())
		start, c0 := time.Now(), cpuTime()
		defer func() { lowest(&floorCPU, cpuTime()-c0) }()
		if err := pglogrepl.StartReplication(context.Background(), fc, slot, 0, pglogrepl.StartReplicationOptions{
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
		return float64(n) / time.Since(start).Seconds()
	}
	// sourceRound reads through the source, acknowledging every batch.
	sourceRound := func(slot string) (rate float64, open time.Duration) {
		src := e.sourceConfig(b, extra(slot))
		opening := time.Now()
		if err := src.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		start, c0 := time.Now(), cpuTime()
		got := 0
		for got < benchRows {
			batch, err := src.Read(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			got += len(batch.Messages)
			batch.Ack(nil)
		}
		rate = float64(got) / time.Since(start).Seconds()
		lowest(&sourceCPU, cpuTime()-c0)
		src.Close(context.Background())
		return rate, start.Sub(opening)
	}

	b.ResetTimer()
	for b.Loop() {
		var floor, source, opens []float64
		src := func(i int) {
			r, o := sourceRound(srcSlots[i])
			source = append(source, r)
			opens = append(opens, float64(o.Microseconds())/1e3)
		}
		floor = append(floor, floorRound(floorSlots[0]))
		src(0)
		src(1)
		floor = append(floor, floorRound(floorSlots[1]))
		floor = append(floor, floorRound(floorSlots[2]))
		src(2)
		if testing.Verbose() {
			b.Logf("floor %.0f events/s, source %.0f events/s", floor, source)
		}
		f, s := median(floor), median(source)
		b.ReportMetric(s, "events/s")
		b.ReportMetric(f, "floor-events/s")
		b.ReportMetric(100*s/f, "%-of-floor")
		b.ReportMetric(median(opens), "open_ms")
		b.ReportMetric(float64(sourceCPU.Nanoseconds())/benchRows, "cpu-ns/event")
		b.ReportMetric(float64(floorCPU.Nanoseconds())/benchRows, "floor-cpu-ns/event")
	}
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	return v[len(v)/2]
}
