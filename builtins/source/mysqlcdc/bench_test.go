package mysqlcdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
)

// benchRows is how many rows the CDC benchmarks read per iteration, written
// in transactions of benchTxn rows.
const benchRows, benchTxn = 200_000, 1000

// benchData is a table filled once per test binary, and the GTID positions
// before and after its rows were written.
type benchData struct {
	f          *fixture
	table      string
	from, upto string
}

var (
	benchOnce sync.Once
	bench     *benchData
	benchErr  error
)

func benchTable(b *testing.B) *benchData {
	benchOnce.Do(func() {
		f := newFixture(b)
		// The fixture's connection closes with the first benchmark; the
		// table outlives it (TestMain drops it).
		db, err := sql.Open("mysql", f.dsn+"test?sql_mode=''")
		if err != nil {
			benchErr = err
			return
		}
		f.db = db
		name := fmt.Sprintf("test.cdc_bench_%06d", rand.IntN(1e6))
		d := &benchData{f: f, table: name}
		_, benchErr = db.Exec("CREATE TABLE " + name + " (id INT PRIMARY KEY, account BIGINT, name VARCHAR(40), amount DECIMAL(12,2), created DATETIME(3), note TEXT)")
		if benchErr != nil {
			return
		}
		bench = d
		db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&d.from)
		for i := 0; i < benchRows && benchErr == nil; i += benchTxn {
			_, benchErr = db.Exec(fmt.Sprintf(`INSERT INTO %s SELECT seq, seq * 7919, CONCAT('customer-', seq), seq / 100,
				'2026-01-02 03:04:05.678' + INTERVAL seq SECOND, 'a short note about the order' FROM seq_%d_to_%d`, name, i+1, i+benchTxn))
		}
		db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&d.upto)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

// BenchmarkBinlogFloor is the floor the source is measured against: the
// protocol package alone reading the same binlog the simplest fast way a
// program would (dump from a GTID, CRC32 checked, table maps, rows split
// into values, each row rendered as a JSON object {"column":value,...}
// into one reused buffer), without envelopes, batches or the engine.
func BenchmarkBinlogFloor(b *testing.B) {
	d := benchTable(b)
	mc, _ := mysql.ParseDSN(d.f.dsn)
	db, name := splitTable(d.table)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		ctx := context.Background()
		c, err := binlog.Dial(ctx, binlog.Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd})
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.StartDump(binlog.DumpOptions{ServerID: 2200000000 + uint32(rand.IntN(1e6)), GTID: d.from, UseGTID: true, NonBlocking: true})
		if err != nil {
			b.Fatal(err)
		}
		var re binlog.RowsEvent
		var tm *binlog.TableMap
		var cells []binlog.Cell
		var buf []byte
		var names []string
		n := 0
		for n < benchRows {
			ev, err := s.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case ev.Type == binlog.TableMapEvent:
				m, err := s.Decoder().ParseTableMap(ev.Body)
				if err != nil {
					b.Fatal(err)
				}
				if m.Schema == db && m.Table == name {
					tm = m
					cells = make([]binlog.Cell, len(m.Columns))
					names = []string{"id", "account", "name", "amount", "created", "note"}
					tm.Columns[2].Name = "x" // a text column: not binary
				}
			case ev.Type.IsRows() && tm != nil:
				if err := s.Decoder().ParseRows(ev.Header, ev.Body, &re); err != nil {
					b.Fatal(err)
				}
				if re.TableID != tm.TableID {
					continue
				}
				for re.More() {
					if err := re.NextImage(tm, false, cells); err != nil {
						b.Fatal(err)
					}
					buf = append(buf[:0], '{')
					for i := range cells {
						if i > 0 {
							buf = append(buf, ',')
						}
						buf = append(buf, '"')
						buf = append(buf, names[i]...)
						buf = append(buf, '"', ':')
						if cells[i].Null {
							buf = append(buf, "null"...)
							continue
						}
						if buf, err = binlog.AppendJSON(buf, &tm.Columns[i], cells[i].Raw); err != nil {
							b.Fatal(err)
						}
					}
					buf = append(buf, '}')
					n++
				}
			}
		}
		c.Close()
		if n != benchRows {
			b.Fatalf("read %d rows, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkSource reads the same rows through the mysql_cdc source: change
// events in Debezium's envelope, batches per table, acknowledged as they
// come, the checkpoint committed behind them.
func BenchmarkSource(b *testing.B) {
	d := benchTable(b)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		b.StopTimer()
		f := &fixture{t: b, dsn: d.f.dsn, db: d.f.db, state: b.TempDir()}
		st, err := checkpoint.Open(filepath.Join(f.state, "t1"), checkpointName)
		if err != nil {
			b.Fatal(err)
		}
		st.Save(state{GTID: d.from, File: "unused", Pos: 4})
		st.Close()
		s := f.build(f.config([]string{d.table}, "snapshot = false\n"))
		b.StartTimer()
		ctx := context.Background()
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < benchRows {
			batch, err := s.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(batch.Messages)
			batch.Ack(nil)
		}
		s.Close(ctx)
		if n != benchRows {
			b.Fatalf("read %d rows, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/time.Since(start).Seconds(), "rows/s")
}

func splitTable(t string) (string, string) {
	for i := range t {
		if t[i] == '.' {
			return t[:i], t[i+1:]
		}
	}
	return "", t
}

// dropBenchTable removes the benchmark's table (from TestMain).
func dropBenchTable() {
	if bench != nil {
		bench.f.db.Exec("DROP TABLE IF EXISTS " + bench.table)
		bench.f.db.Close()
	}
}
