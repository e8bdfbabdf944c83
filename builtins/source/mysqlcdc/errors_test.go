package mysqlcdc

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// openErr opens a source that must fail to start and returns the error,
// checking it is task-permanent (the task stops in StartFailed) and
// arrives without hanging.
func openErr(t *testing.T, f *fixture, src string) error {
	t.Helper()
	s := f.build(src)
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	err := s.Open(ctx)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Open hung until its deadline: %v", err)
	}
	if c := component.ClassOf(err); c != component.ClassTaskPermanent {
		t.Fatalf("Open: %v is %s, want task_permanent", err, c)
	}
	return err
}

func wantMsg(t *testing.T, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

func TestMissingTable(t *testing.T) {
	f := newFixture(t)
	err := openErr(t, f, f.config([]string{"test.no_such_table_" + testkit.Unique(t, "x")}, ""))
	wantMsg(t, err, "does not exist", "fix tables")
}

func TestWrongPassword(t *testing.T) {
	f := newFixture(t)
	u := testkit.Unique(t, "u")
	user := "sl_" + u[len(u)-20:]
	f.exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY 'right'")
	t.Cleanup(func() { f.db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	mc, _ := mysql.ParseDSN(f.dsn)
	mc.User, mc.Passwd = user, "not-the-Pa55word"
	table := f.table("pw", "id INT PRIMARY KEY")
	f.dsn = mc.FormatDSN()
	err := openErr(t, f, f.config([]string{table}, ""))
	wantMsg(t, err, "refused user", "check the user and password in dsn")
	if strings.Contains(err.Error(), "Pa55word") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestMissingPrivilege: a user who may read the table but not the binlog.
func TestMissingPrivilege(t *testing.T) {
	f := newFixture(t)
	u := testkit.Unique(t, "u")
	user := "sl_" + u[len(u)-20:]
	table := f.table("priv", "id INT PRIMARY KEY")
	f.exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'")
	t.Cleanup(func() { f.db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	f.exec("GRANT SELECT ON " + table + " TO '" + user + "'@'%'")
	mc, _ := mysql.ParseDSN(f.dsn)
	mc.User, mc.Passwd = user, "pw"
	f.dsn = mc.FormatDSN()
	err := openErr(t, f, f.config([]string{table}, "snapshot = false\n"))
	wantMsg(t, err, "REPLICATION")
}

// TestPurgedPosition: a checkpoint naming a position the server does not
// have (purged binlogs) fails the start and says how to start over.
func TestPurgedPosition(t *testing.T) {
	f := newFixture(t)
	table := f.table("purged", "id INT PRIMARY KEY")
	src := f.config([]string{table}, "")
	s := f.open(src)
	s.Close(context.Background())
	st, err := checkpoint.Open(filepath.Join(f.state, "t1"), checkpointName)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(state{GTID: "0-1-999999999", File: "mysql-bin.999999", Pos: 4}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	err = openErr(t, f, src)
	wantMsg(t, err, "cannot stream from position 0-1-999999999", "remove the checkpoint")
}

// TestBinlogOff runs a throwaway MariaDB server without a binlog (the
// shared one must keep its own) and expects a start failure that says to
// turn the binlog on.
func TestBinlogOff(t *testing.T) {
	testkit.MariaDB(t)
	addr := throwawayMariaDB(t, "--skip-log-bin")
	f := &fixture{t: t, state: t.TempDir(), dsn: "root@tcp(" + addr + ")/"}
	err := openErr(t, f, f.config([]string{"mysql.user"}, ""))
	wantMsg(t, err, "binary logging is off", "log_bin")
}

// throwawayMariaDB starts a MariaDB server of its own (datadir in a temp
// folder, a free port, no grant checks) and stops it at the end.
func throwawayMariaDB(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		if testkit.Integration() {
			t.Fatalf("mariadb-install-db is not installed: %v", err)
		}
		t.Skipf("mariadb-install-db is not installed: %v", err)
	}
	dir, err := os.MkdirTemp("", "sluice-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	addr := testkit.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	testkit.RunServer(t, "mariadbd", addr, append([]string{"--no-defaults", "--datadir=" + data, "--port=" + port,
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--user=root", "--skip-grant-tables", "--innodb-buffer-pool-size=16M"}, args...)...)
	return addr
}
