package mysqlcdc

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestSnapshotSurvivesLostConnection: the snapshot's connection is killed
// in the middle of a table. The source reads on from the last row it read,
// in a new snapshot transaction, instead of failing every Read from then on
// (the engine retries Read, but nothing restarted the reader: the task
// stayed Running, reading nothing, until the process restarted).
func TestSnapshotSurvivesLostConnection(t *testing.T) {
	f := newFixture(t)
	table := f.table("snapkill", "id INT PRIMARY KEY, v INT")
	const rows = 2000
	f.exec(fmt.Sprintf("INSERT INTO %s SELECT seq, seq FROM seq_1_to_%d", table, rows))
	// A user of its own, to find the snapshot's connection among others.
	user := testkit.Unique(t, "snapkill")
	if len(user) > 32 {
		user = user[len(user)-32:]
	}
	f.exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY ''")
	t.Cleanup(func() { f.db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	f.exec("GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO '" + user + "'@'%'")
	mc, err := mysql.ParseDSN(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	mc.User, mc.Passwd = user, ""
	dsn := f.dsn
	f.dsn = mc.FormatDSN()
	s := f.open(f.config([]string{table}, "snapshot_chunk_size = 10\nmax_events = 10\n"))
	f.dsn = dsn
	// The reader fills its queue and waits, mid-table, its transaction open.
	testkit.WaitFor(t, "the reader to fill its queue", func() bool { return len(s.out) == cap(s.out) })
	var id int64
	if err := f.db.QueryRow("SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.USER = ?", user).Scan(&id); err != nil {
		t.Fatalf("find the snapshot's connection: %v", err)
	}
	f.exec(fmt.Sprintf("KILL %d", id))
	// Read as the engine does: an error that is not permanent is retried.
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	seen := map[string]bool{}
	var lastErr error
	for len(seen) < rows {
		b, err := s.Read(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d rows read; last error: %v", len(seen), rows, lastErr)
		}
		if err != nil {
			if component.ClassOf(err) == component.ClassTaskPermanent {
				t.Fatal(err)
			}
			lastErr = err
			continue
		}
		for _, m := range b.Messages {
			x := decode(t, b.Lane, m.Payload, m.Key)
			if x.Data.Op != "r" {
				t.Fatalf("change %s during a snapshot of a table nobody writes", x.ID)
			}
			seen[fmt.Sprint(x.Data.After["id"])] = true
		}
		b.Ack(nil)
	}
}
