package cdce2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// myWriter runs a write load on MariaDB until stop: inserts, updates and
// deletes of orders, in transactions of one to three statements, one in ten
// rolled back, audit rows alongside.
func myWriter(t *testing.T, db *sql.DB, orders, audit string, firstID int, stop <-chan struct{}) (<-chan struct{}, *atomic.Int64) {
	ch := make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(ch)
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
		next := firstID
		pace := time.NewTicker(2 * time.Millisecond) // a steady load, not a flood, on a shared machine
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			tx, err := db.Begin()
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			for range 1 + r.IntN(3) {
				id := 1 + r.IntN(next)
				switch k := r.IntN(10); {
				case k < 4:
					next++
					_, err = tx.Exec("INSERT INTO "+orders+" VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
						next, []string{"eu", "us", "ap"}[r.IntN(3)], fmt.Sprintf("%d.%02d", r.IntN(1000), r.IntN(100)), fmt.Sprint("note ", next))
				case k < 5:
					_, err = tx.Exec("DELETE FROM "+orders+" WHERE id = ?", id)
				case k < 6:
					_, err = tx.Exec("INSERT INTO "+audit+" (what) VALUES (?)", fmt.Sprint("touched ", id))
				default:
					_, err = tx.Exec("UPDATE "+orders+" SET amount = amount + 1, note = ?, updated = UTC_TIMESTAMP(6) WHERE id = ?", fmt.Sprint("upd ", r.Int()), id)
				}
				if err != nil {
					t.Errorf("writer: %v", err)
					tx.Rollback()
					return
				}
			}
			if r.IntN(10) == 0 {
				err = tx.Rollback()
			} else {
				err = tx.Commit()
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

// TestShowcaseMariaDBToPostgres runs testdata/pipelines/mariadb-to-postgres.toml
// (mysql_cdc -> filter -> partial -> postgres in cdc mode) while a writer
// inserts, updates and deletes on MariaDB, kills the process with SIGKILL
// three times, and checks that the two tables end identical, row by row.
func TestShowcaseMariaDBToPostgres(t *testing.T) {
	s := connect(t)
	orders, audit := s.slot+"_orders", s.slot+"_audit"
	s.myExec(t, "CREATE TABLE "+orders+" (id int PRIMARY KEY, region varchar(20) NOT NULL, amount decimal(12,2) NOT NULL, note text, updated datetime(6) NOT NULL)")
	s.myExec(t, "CREATE TABLE "+audit+" (seq bigint AUTO_INCREMENT PRIMARY KEY, what text)")
	s.pgExec(t, "CREATE TABLE "+orders+" (id int PRIMARY KEY, region text NOT NULL, amount numeric(12,2) NOT NULL, note text, updated timestamptz NOT NULL)")
	t.Cleanup(func() {
		s.my.Exec("DROP TABLE IF EXISTS " + orders + ", " + audit)
		s.pg.Exec(t.Context(), "DROP TABLE IF EXISTS "+orders)
	})
	// Rows for the snapshot.
	s.myExec(t, "INSERT INTO "+orders+" SELECT seq, 'eu', seq + 0.5, 'first', UTC_TIMESTAMP(6) FROM seq_1_to_3000")

	// Its own replica id: another run of this test on the same MariaDB
	// would otherwise drop this one's binlog stream.
	task := testkit.TaskCopy(t, filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", "mariadb-to-postgres.toml"),
		"server_id = 4002", fmt.Sprintf("server_id = %d", testkit.ReplicaID()))
	state := t.TempDir()
	env := []string{
		"SHOWCASE_PG_DSN=" + s.pgDSN, "SHOWCASE_MARIADB_DSN=" + s.myDSN,
		"SHOWCASE_MY_ORDERS=test." + orders, "SHOWCASE_MY_AUDIT=test." + audit, "SHOWCASE_MY_ORDERS_NAME=" + orders,
		"SHOWCASE_PG_ORDERS=public." + orders,
	}
	start := func() *testkit.Proc {
		return testkit.StartSluice(t, testkit.ProcOptions{Env: env}, "run", "--state-dir", state, task)
	}
	stop := make(chan struct{})
	done, commits := myWriter(t, s.my, orders, audit, 3000, stop)
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
			s.pg.QueryRow(t.Context(), "SELECT to_char(MAX(updated) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM "+orders).Scan(&last)
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
	want := s.myRows(t, orders)
	var last string
	ok := testkit.Eventually(testkit.DefaultWait*2, func() bool {
		last = diff(s.pgRows(t, orders), want)
		return last == ""
	})
	if !ok {
		t.Fatalf("the tables differ after %d transactions: %s", commits.Load(), last)
	}
	t.Logf("%d rows identical after %d transactions and 3 kills", len(want), commits.Load())
	p.Stop(t)
}
