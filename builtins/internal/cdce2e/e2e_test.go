// Package cdce2e runs the change data capture connectors end to end in
// real sluice processes against the local PostgreSQL and MariaDB: the
// showcase replication with kill -9, and every change delivered through
// kill -9 under a write load. It holds tests only.
package cdce2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}

type servers struct {
	pgDSN, myDSN string
	pg           *pgx.Conn
	my           *sql.DB
	slot         string
}

func connect(t *testing.T) *servers {
	s := &servers{pgDSN: testkit.Postgres(t), myDSN: testkit.MariaDB(t), slot: testkit.Unique(t, "e2e")}
	var err error
	if s.pg, err = pgx.Connect(context.Background(), s.pgDSN); err != nil {
		t.Fatal(err)
	}
	if s.my, err = sql.Open("mysql", s.myDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		testkit.Eventually(30*time.Second, func() bool {
			s.pg.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", s.slot)
			_, err := s.pg.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", s.slot)
			return err == nil
		})
		s.pg.Exec(ctx, "DROP PUBLICATION IF EXISTS "+s.slot)
		s.pg.Close(ctx)
		s.my.Close()
	})
	return s
}

func (s *servers) pgExec(t testing.TB, q string) {
	t.Helper()
	if _, err := s.pg.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (s *servers) myExec(t testing.TB, q string) {
	t.Helper()
	if _, err := s.my.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// writer runs a write load on its own connection until stop: inserts,
// updates and deletes of orders, in transactions of one to three
// statements, one in ten rolled back, audit rows alongside.
func writer(t *testing.T, dsn, orders, audit string, firstID int, stop <-chan struct{}) (done <-chan struct{}, commits *atomic.Int64) {
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(ch)
		defer c.Close(context.Background())
		ctx := context.Background()
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		next := firstID
		pace := time.NewTicker(2 * time.Millisecond) // a steady load, not a flood, on a shared machine
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			for range 1 + r.IntN(3) {
				id := 1 + r.IntN(next)
				var err error
				switch k := r.IntN(10); {
				case k < 4:
					next++
					_, err = tx.Exec(ctx, "INSERT INTO "+orders+" VALUES ($1, $2, $3, $4, clock_timestamp())",
						next, []string{"eu", "us", "ap"}[r.IntN(3)], fmt.Sprintf("%d.%02d", r.IntN(1000), r.IntN(100)), fmt.Sprint("note ", next))
				case k < 5:
					_, err = tx.Exec(ctx, "DELETE FROM "+orders+" WHERE id = $1", id)
				case k < 6:
					_, err = tx.Exec(ctx, "INSERT INTO "+audit+" (what) VALUES ($1)", fmt.Sprint("touched ", id))
				default:
					_, err = tx.Exec(ctx, "UPDATE "+orders+" SET amount = amount + 1, note = $2, updated = clock_timestamp() WHERE id = $1", id, fmt.Sprint("upd ", r.Int()))
				}
				if err != nil {
					t.Errorf("writer: %v", err)
					tx.Rollback(ctx)
					return
				}
			}
			if r.IntN(10) == 0 {
				err = tx.Rollback(ctx)
			} else {
				err = tx.Commit(ctx)
				n.Add(1)
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
		}
	}()
	return ch, &n
}

func (s *servers) pgRows(t testing.TB, tbl string) []string {
	rows, err := s.pg.Query(context.Background(), "SELECT id::text || '|' || region || '|' || amount::text || '|' || coalesce(note, 'NULL') || '|' || "+
		"to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM "+tbl+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func (s *servers) myRows(t testing.TB, tbl string) []string {
	rows, err := s.my.Query("SELECT CONCAT(id, '|', region, '|', CAST(amount AS CHAR), '|', coalesce(note, 'NULL'), '|', DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f')) FROM " + tbl + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func diff(a, b []string) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d rows in PostgreSQL, %d in MariaDB", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: PostgreSQL %q, MariaDB %q", i, a[i], b[i])
		}
	}
	return ""
}

// TestShowcasePostgresToMariaDB runs testdata/pipelines/postgres-to-mariadb.toml
// while a writer inserts, updates and deletes, kills the process with
// SIGKILL three times, and checks that the two tables end identical, row
// by row.
func TestShowcasePostgresToMariaDB(t *testing.T) {
	s := connect(t)
	orders, audit := s.slot+"_orders", s.slot+"_audit"
	s.pgExec(t, "CREATE TABLE "+orders+" (id int PRIMARY KEY, region text NOT NULL, amount numeric(12,2) NOT NULL, note text, updated timestamptz NOT NULL)")
	s.pgExec(t, "CREATE TABLE "+audit+" (seq bigserial PRIMARY KEY, what text)")
	s.myExec(t, "CREATE TABLE "+orders+" (id int PRIMARY KEY, region varchar(20) NOT NULL, amount decimal(12,2) NOT NULL, note text, updated datetime(6) NOT NULL)")
	t.Cleanup(func() {
		s.pg.Exec(context.Background(), "DROP TABLE IF EXISTS "+orders+", "+audit)
		s.my.Exec("DROP TABLE IF EXISTS " + orders)
	})
	// Rows for the snapshot.
	s.pgExec(t, "INSERT INTO "+orders+" SELECT g, 'eu', g + 0.5, 'first', clock_timestamp() FROM generate_series(1, 3000) g")

	task, err := filepath.Abs(filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", "postgres-to-mariadb.toml"))
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	env := []string{
		"SHOWCASE_PG_DSN=" + s.pgDSN, "SHOWCASE_MARIADB_DSN=" + s.myDSN, "SHOWCASE_SLOT=" + s.slot,
		"SHOWCASE_PG_ORDERS=public." + orders, "SHOWCASE_PG_AUDIT=public." + audit, "SHOWCASE_PG_ORDERS_NAME=" + orders,
		"SHOWCASE_MY_ORDERS=" + orders,
	}
	start := func() *testkit.Proc {
		return testkit.StartSluice(t, testkit.ProcOptions{Env: env}, "run", "--state-dir", state, task)
	}
	stop := make(chan struct{})
	done, commits := writer(t, s.pgDSN, orders, audit, 3000, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	p := start()
	for kill := 1; kill <= 3; kill++ {
		// Let the restarted process apply changes written after it started.
		since := time.Now().UTC()
		before := commits.Load()
		testkit.WaitFor(t, fmt.Sprintf("changes applied before kill %d", kill), func() bool {
			var last sql.NullString
			s.my.QueryRow("SELECT DATE_FORMAT(MAX(updated), '%Y-%m-%d %H:%i:%s.%f') FROM " + orders).Scan(&last)
			if p.Exited() {
				t.Fatalf("sluice exited: %v", p.Err())
			}
			return commits.Load() > before+20 && last.Valid && last.String > since.Format("2006-01-02 15:04:05.000000")
		})
		p.Kill()
		t.Logf("kill -9 #%d after %d committed transactions", kill, commits.Load())
		p = start()
	}
	// Some more load after the last restart, then quiet.
	before := commits.Load()
	testkit.WaitFor(t, "more writes after the last restart", func() bool { return commits.Load() > before+50 })
	close(stop)
	<-done
	want := s.pgRows(t, orders)
	var last string
	ok := testkit.Eventually(testkit.DefaultWait*2, func() bool {
		last = diff(want, s.myRows(t, orders))
		return last == ""
	})
	if !ok {
		t.Fatalf("the tables differ after %d transactions: %s", commits.Load(), last)
	}
	t.Logf("%d rows identical after %d transactions and 3 kills", len(want), commits.Load())
	p.Stop(t)
}

// TestKillNineDeliversEveryChange writes a load of inserts and updates,
// kills a postgres_cdc -> file task three times with SIGKILL, and checks
// that every committed change reached the file, duplicates only from the
// moments before the kills.
func TestKillNineDeliversEveryChange(t *testing.T) {
	s := connect(t)
	tbl := s.slot + "_t"
	s.pgExec(t, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v int NOT NULL)")
	t.Cleanup(func() { s.pg.Exec(context.Background(), "DROP TABLE IF EXISTS "+tbl) })
	dir := t.TempDir()
	if d := os.Getenv("SLUICE_E2E_KEEP"); d != "" {
		dir = d
	}
	out := filepath.Join(dir, "changes.jsonl")
	task := filepath.Join(dir, "task.toml")
	os.WriteFile(task, []byte(fmt.Sprintf(`name = "kill9"
[source]
type = "postgres_cdc"
dsn = %q
tables = ["public.%s"]
slot = %q
status_interval = "200ms"
[sink]
type = "file"
path = %q
`, s.pgDSN, tbl, s.slot, out)), 0o644)
	start := func() *testkit.Proc {
		return testkit.StartSluice(t, testkit.ProcOptions{}, "run", "--state-dir", filepath.Join(dir, "state"), task)
	}
	// The writer: each transaction inserts a row or bumps a row's v; every
	// committed (id, v) pair must arrive.
	// The slot must exist before the first change: changes made before it
	// reach the snapshot as a row's state, not each on its own.
	p := start()
	p.WaitLog(t, "streaming changes")
	var mu sync.Mutex
	committed := map[string]bool{}
	stop := make(chan struct{})
	wdone := make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(wdone)
		c, err := pgx.Connect(context.Background(), s.pgDSN)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		ctx := context.Background()
		versions := []int{}
		r := rand.New(rand.NewPCG(1, 1))
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			var id, v int
			var q string
			if len(versions) == 0 || r.IntN(2) == 0 {
				id, v = len(versions)+1, 0
				versions = append(versions, 0)
				q = fmt.Sprintf("INSERT INTO %s VALUES (%d, 0)", tbl, id)
			} else {
				id = 1 + r.IntN(len(versions))
				versions[id-1]++
				v = versions[id-1]
				q = fmt.Sprintf("UPDATE %s SET v = %d WHERE id = %d", tbl, v, id)
			}
			if _, err := c.Exec(ctx, q); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed[fmt.Sprintf("%d/%d", id, v)] = true
			mu.Unlock()
			n.Add(1)
		}
	}()
	for kill := 1; kill <= 3; kill++ {
		before := n.Load()
		lines := countLines(out)
		from := s.confirmed(t)
		testkit.WaitFor(t, "changes delivered and confirmed before the kill", func() bool {
			if p.Exited() {
				t.Fatalf("sluice exited: %v", p.Err())
			}
			return n.Load() > before+100 && countLines(out) > lines+50 && s.confirmed(t) > from
		})
		p.Kill()
		p = start()
	}
	close(stop)
	<-wdone
	var seen map[string]int
	var missing []string
	ok := testkit.Eventually(testkit.DefaultWait, func() bool {
		seen = readChanges(t, out)
		mu.Lock()
		defer mu.Unlock()
		missing = missing[:0]
		for k := range committed {
			if seen[k] == 0 {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
	if !ok {
		t.Fatalf("%d of %d committed changes never delivered, e.g. %v", len(missing), len(committed), missing[:min(5, len(missing))])
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d changes delivered through 3 kills, %d duplicates", len(committed), dups)
	// Duplicates come only from the unconfirmed moments before each kill
	// (status_interval = 200ms): far fewer than the changes.
	if dups > len(committed)/2 {
		t.Fatalf("%d duplicates for %d changes", dups, len(committed))
	}
	p.Stop(t)
}

// confirmed returns the slot's confirmed position.
func (s *servers) confirmed(t testing.TB) string {
	var lsn string
	s.pg.QueryRow(context.Background(), "SELECT lpad(split_part(confirmed_flush_lsn::text, '/', 1), 8, '0') || lpad(split_part(confirmed_flush_lsn::text, '/', 2), 8, '0') FROM pg_replication_slots WHERE slot_name = $1", s.slot).Scan(&lsn)
	return lsn
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

// readChanges counts the (id, v) pairs of the change events in the file.
func readChanges(t *testing.T, path string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Data struct {
				After *struct {
					ID int `json:"id"`
					V  int `json:"v"`
				} `json:"after"`
			} `json:"data"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Data.After == nil {
			continue // a line torn by the kill
		}
		out[fmt.Sprintf("%d/%d", ev.Data.After.ID, ev.Data.After.V)]++
	}
	return out
}
