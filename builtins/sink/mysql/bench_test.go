package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

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

// BenchmarkUpsert measures rows/s upserted into MariaDB by this sink
// (batches of 1000 CloudEvents, columns from JSONPaths, one transaction
// each) next to the floor: plain database/sql with go-sql-driver/mysql,
// one multi-row INSERT ... ON DUPLICATE KEY UPDATE per batch of the same
// rows in a transaction, values already in Go (no JSON), placeholders
// interpolated client-side. A third figure, server-rows/s, is the server
// alone: the same upserts generated inside it (INSERT ... SELECT FROM a
// sequence table ... ON DUPLICATE KEY UPDATE, 1000 rows a transaction), no
// client and no data on the wire, the ceiling any client meets on this
// server. Run with -benchtime 1x (make bench).
func BenchmarkUpsert(b *testing.B) {
	e := newMy(b)
	cols := "id int PRIMARY KEY, region varchar(20), amount decimal(12,2), note text, updated datetime(6)"
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
	mc, _ := mysql.ParseDSN(e.dsn)
	mc.InterpolateParams = true
	conn, _ := mysql.NewConnector(mc)
	floorDB := sql.OpenDB(conn)
	defer floorDB.Close()
	q := "INSERT INTO " + floorTbl + " (id, region, amount, note, updated) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", benchBatch), ",") +
		" ON DUPLICATE KEY UPDATE region = VALUES(region), amount = VALUES(amount), note = VALUES(note), updated = VALUES(updated)"
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		var rates, floors, servers []float64
		for range 3 {
			start := time.Now()
			for i := 0; i < benchRows; i += benchBatch {
				if _, err := floorDB.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (id, region, amount, note, updated) SELECT seq %% 100000 + 1, 'eu-west-1', CONCAT(seq, '.25'), CONCAT('order note ', seq), "+
					"TIMESTAMP'2026-01-01 00:00:00' + INTERVAL (seq %% 1000000) MICROSECOND FROM seq_%d_to_%d "+
					"ON DUPLICATE KEY UPDATE region = VALUES(region), amount = VALUES(amount), note = VALUES(note), updated = VALUES(updated)", serverTbl, i, i+benchBatch-1)); err != nil {
					b.Fatal(err)
				}
			}
			servers = append(servers, float64(benchRows)/time.Since(start).Seconds())
			start = time.Now()
			for i := 0; i < benchRows; i += benchBatch {
				args := make([]any, 0, benchBatch*5)
				for j := range benchBatch {
					n := i + j
					args = append(args, n%benchKeys+1, "eu-west-1", fmt.Sprintf("%d.25", n), fmt.Sprintf("order note %d", n),
						time.Date(2026, 1, 1, 0, 0, 0, (n%1000000)*1000, time.UTC))
				}
				tx, err := floorDB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, q, args...); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			floors = append(floors, float64(benchRows)/time.Since(start).Seconds())
			start = time.Now()
			for _, batch := range batches {
				if err := sk.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			rates = append(rates, float64(benchRows)/time.Since(start).Seconds())
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
