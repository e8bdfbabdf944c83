package mysqlcdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/message"
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
func floorRound(b *testing.B, d *benchData, envelope bool) time.Duration {
	mc, _ := mysql.ParseDSN(d.f.dsn)
	db, name := splitTable(d.table)
	var start time.Time
	{
		ctx := context.Background()
		c, err := binlog.Dial(ctx, binlog.Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd})
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.StartDump(binlog.DumpOptions{ServerID: 2200000000 + uint32(rand.IntN(1e6)), GTID: d.from, UseGTID: true, NonBlocking: true})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		var re binlog.RowsEvent
		var tm *binlog.TableMap
		var cells []binlog.Cell
		var buf []byte
		var names []string
		var table *cdc.Table
		enc := cdc.NewEncoder(cdc.Options{Connector: "mysql", Source: "mysql://" + mc.Addr, Type: EventType})
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
					cols := make([]cdc.Column, len(names))
					for i, n := range names {
						cols[i].Name = n
					}
					table = cdc.NewTable(db, "", name, cols, []int{0})
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
					if envelope {
						buf = enc.Begin(buf[:0], table, cdc.Create, []byte("0-1-1:0"), int64(ev.Timestamp)*1000)
						buf = enc.NullImage(buf, cdc.Before)
						buf = enc.BeginImage(buf, cdc.After)
						for i := range cells {
							buf = enc.Column(buf, i)
							if buf, err = binlog.AppendJSON(buf, &tm.Columns[i], cells[i].Raw); err != nil {
								b.Fatal(err)
							}
						}
						buf = enc.EndImage(buf)
						buf = enc.BeginSource(buf, false)
						buf, _ = enc.End(buf)
						n++
						continue
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
	return time.Since(start)
}

// sourceRound reads the same rows through the mysql_cdc source: change
// events in Debezium's envelope, batches per table, acknowledged as they
// come, the checkpoint committed behind them. The clock starts once Open
// returned (the server's settings checked, the tables' columns read, the
// checkpoint saved, the position tried), as the floor's starts once its
// dump was requested: the rate is the stream's; the start, a one-off cost
// a long-running source pays once, is returned apart (open).
func sourceRound(b *testing.B, d *benchData) (took, open, cpu time.Duration) {
	{
		f := &fixture{t: b, dsn: d.f.dsn, db: d.f.db, state: b.TempDir()}
		st, err := checkpoint.Open(filepath.Join(f.state, "t1"), checkpointName)
		if err != nil {
			b.Fatal(err)
		}
		st.Save(state{GTID: d.from, File: "unused", Pos: 4})
		st.Close()
		s := f.build(f.config([]string{d.table}, "snapshot = false\n"))
		opening := time.Now()
		ctx := context.Background()
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		open = start.Sub(opening)
		c0 := cpuTime()
		n := 0
		for n < benchRows {
			batch, err := s.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 || n+len(batch.Messages) >= benchRows {
				checkBenchBatch(b, batch.Messages, n) // the first and the last: a fast source that reads wrong is no win
			}
			n += len(batch.Messages)
			batch.Ack(nil)
		}
		took = time.Since(start)
		cpu = cpuTime() - c0
		s.Close(ctx)
		if n != benchRows {
			b.Fatalf("read %d rows, want %d", n, benchRows)
		}
	}
	return took, open, cpu
}

// checkBenchBatch checks the change events of a batch whose first row is
// row n of the benchmark's table (ids from 1, inserted in order): valid JSON,
// an insert, and the row's values.
func checkBenchBatch(b *testing.B, msgs []message.Message, n int) {
	b.Helper()
	for i, m := range msgs {
		var ev struct {
			Data struct {
				Op    string `json:"op"`
				After struct {
					ID     int    `json:"id"`
					Name   string `json:"name"`
					Amount string `json:"amount"`
					Note   string `json:"note"`
				} `json:"after"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			b.Fatalf("row %d: %v: %s", n+i+1, err, m.Payload)
		}
		a, id := ev.Data.After, n+i+1
		if ev.Data.Op != "c" || a.ID != id || a.Name != fmt.Sprintf("customer-%d", id) || a.Note != "a short note about the order" || a.Amount == "" {
			b.Fatalf("row %d: unexpected event %s", id, m.Payload)
		}
	}
}

// BenchmarkCDC reads 200,000 inserted rows (transactions of 1,000) from
// MariaDB's binlog with the mysql_cdc source and with two floors, in
// alternating rounds, and reports the medians: rows/s of each and the
// source's share of each floor. The floors are one loop on the protocol
// package: the first renders each row as a JSON object, the second (its
// "envelope" variant) writes each row as the same change event as the
// source, with the same encoder, minus batches, acknowledgements and the
// checkpoint.
//
//	go test -run '^$' -bench BenchmarkCDC -benchtime 1x ./builtins/source/mysqlcdc
func BenchmarkCDC(b *testing.B) {
	d := benchTable(b)
	const rounds = 5
	var floor, floorEnv, source, opens []float64
	// CPU time of this process per row, user and system, every goroutine
	// (the source's from Open's return, as its clock): the lowest of the
	// rounds. The server's
	// share is not in it; unlike the rates it hardly moves with the load.
	var floorCPU, floorEnvCPU, sourceCPU time.Duration
	lowest := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	for range b.N {
		for range rounds {
			c := cpuTime()
			floor = append(floor, benchRows/floorRound(b, d, false).Seconds())
			c, c0 := cpuTime(), c
			lowest(&floorCPU, c-c0)
			floorEnv = append(floorEnv, benchRows/floorRound(b, d, true).Seconds())
			c, c0 = cpuTime(), c
			lowest(&floorEnvCPU, c-c0)
			took, open, cpu := sourceRound(b, d)
			lowest(&sourceCPU, cpu)
			source = append(source, benchRows/took.Seconds())
			opens = append(opens, float64(open.Microseconds())/1e3)
		}
	}
	f, fe, s := median(floor), median(floorEnv), median(source)
	b.ReportMetric(median(opens), "open_ms")
	perRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / benchRows }
	b.ReportMetric(perRow(sourceCPU), "cpu-ns/row")
	b.ReportMetric(perRow(floorCPU), "floor_cpu-ns/row")
	b.ReportMetric(perRow(floorEnvCPU), "floor+envelope_cpu-ns/row")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(f, "floor_rows/s")
	b.ReportMetric(fe, "floor+envelope_rows/s")
	b.ReportMetric(s, "rows/s")
	b.ReportMetric(100*s/f, "%_of_floor")
	b.ReportMetric(100*s/fe, "%_of_floor+envelope")
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
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
