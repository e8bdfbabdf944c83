package postgres

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

const (
	benchRows  = 200000
	benchBatch = 1000
	benchKeys  = 100000 // half the rows update a key written before
)

func benchEvent(i int) []byte {
	id := i%benchKeys + 1
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"bench-%d","source":"bench","type":"bench","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json",`+
		`"data":{"id":%d,"region":"eu-west-1","amount":"%d.25","note":"order note %d","updated":"2026-01-01T00:00:00.%06dZ"}}`, i, id, i, i, i%1000000)
}

// BenchmarkUpsert measures rows/s upserted into PostgreSQL by this sink
// (batches of 1000 CloudEvents, columns from JSONPaths, one transaction
// each) next to the floor: plain pgx, one INSERT ... SELECT FROM unnest of
// typed arrays ... ON CONFLICT per batch of the same rows, values already
// in Go slices (no JSON). A third figure, server-rows/s, is the server
// alone: the same upserts generated inside it (INSERT ... SELECT FROM
// generate_series ... ON CONFLICT, 1000 rows a transaction), no client and
// no data on the wire, the ceiling any client meets on this server. Run
// with -benchtime 1x (make bench).
func BenchmarkUpsert(b *testing.B) {
	e := newPG(b)
	cols := "id int PRIMARY KEY, region text, amount numeric(12,2), note text, updated timestamptz"
	floorTbl, sinkTbl, serverTbl := e.table(cols), e.table(cols), e.table(cols)
	batches := make([][]message.Message, benchRows/benchBatch)
	for i := range batches {
		batches[i] = make([]message.Message, benchBatch)
		for j := range batches[i] {
			batches[i][j] = message.Message{Payload: benchEvent(i*benchBatch + j)}
		}
	}
	sk := e.sink(b, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.data.id\", region = \"$.data.region\", amount = \"$.data.amount\", note = \"$.data.note\", updated = \"$.data.updated\" }", sinkTbl))
	if err := sk.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer sk.Close(context.Background())
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		// Three rounds each, alternating, on a machine shared with other
		// work: the medians are reported.
		var rates, floors, servers []float64
		for range 3 {
			start := time.Now()
			for i := 0; i < benchRows; i += benchBatch {
				if _, err := e.db.Exec(ctx, "INSERT INTO "+serverTbl+" SELECT g % 100000 + 1, 'eu-west-1', (g || '.25')::numeric, 'order note ' || g, "+
					"timestamptz '2026-01-01 00:00:00Z' + (g % 1000000) * interval '1 microsecond' FROM generate_series($1::int, $2::int) g "+
					"ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, amount = EXCLUDED.amount, note = EXCLUDED.note, updated = EXCLUDED.updated", i, i+benchBatch-1); err != nil {
					b.Fatal(err)
				}
			}
			servers = append(servers, float64(benchRows)/time.Since(start).Seconds())

			start = time.Now()
			q := "INSERT INTO " + floorTbl + " SELECT * FROM unnest($1::int[], $2::text[], $3::numeric[], $4::text[], $5::timestamptz[]) " +
				"ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, amount = EXCLUDED.amount, note = EXCLUDED.note, updated = EXCLUDED.updated"
			for i := 0; i < benchRows; i += benchBatch {
				ids := make([]int32, benchBatch)
				regions := make([]string, benchBatch)
				amounts := make([]string, benchBatch)
				notes := make([]string, benchBatch)
				times := make([]time.Time, benchBatch)
				for j := range benchBatch {
					n := i + j
					ids[j] = int32(n%benchKeys + 1)
					regions[j] = "eu-west-1"
					amounts[j] = fmt.Sprintf("%d.25", n)
					notes[j] = fmt.Sprintf("order note %d", n)
					times[j] = time.Date(2026, 1, 1, 0, 0, 0, (n%1000000)*1000, time.UTC)
				}
				// Keys repeat across batches, not within one (a batch is 1000
				// consecutive rows of 100000 keys).
				if _, err := e.db.Exec(ctx, q, ids, regions, amounts, notes, times); err != nil {
					b.Fatal(err)
				}
			}
			floor := float64(benchRows) / time.Since(start).Seconds()

			start = time.Now()
			for _, batch := range batches {
				if err := sk.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			rates = append(rates, float64(benchRows)/time.Since(start).Seconds())
			floors = append(floors, floor)
		}
		rate, floor := median(rates), median(floors)
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(floor, "floor-rows/s")
		b.ReportMetric(100*rate/floor, "%-of-floor")
		b.ReportMetric(median(servers), "server-rows/s")
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
