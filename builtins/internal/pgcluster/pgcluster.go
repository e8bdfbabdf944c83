// Package pgcluster starts a throwaway PostgreSQL cluster for a test
// (initdb and pg_ctl in a temporary folder, on a free port), for what the
// shared server must not be changed for: password authentication, a
// wal_level other than logical. Only test binaries import it.
package pgcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Options configure the cluster.
type Options struct {
	// Password is the superuser's (user postgres) password; the cluster
	// then authenticates with scram-sha-256 on TCP. Empty: trust.
	Password string
	// Settings are extra postgresql.conf settings, such as
	// "wal_level=replica".
	Settings []string
}

// binDirs are where the server binaries are looked for.
var binDirs = []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin", "/usr/local/bin"}

func findBin(name string) string {
	for _, d := range binDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath(name)
	return p
}

// Start creates and starts a cluster and returns the DSN of its postgres
// database for user postgres (without the password). The cluster is
// stopped and removed at the end of the test. The test is skipped when
// the binaries are missing, or fails under SLUICE_INTEGRATION=1.
func Start(t testing.TB, o Options) string {
	t.Helper()
	initdb, pgctl := findBin("initdb"), findBin("pg_ctl")
	if initdb == "" || pgctl == "" {
		if testkit.Integration() {
			t.Fatal("initdb and pg_ctl are required (SLUICE_INTEGRATION=1) but not found")
		}
		t.Skip("initdb and pg_ctl not found; skipping the throwaway-cluster test")
	}
	dir, err := os.MkdirTemp("", "sluice-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// PostgreSQL refuses to run as root: run it as the postgres user then.
	var runAs []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run a cluster as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) {
		t.Helper()
		full := append(append([]string(nil), runAs...), args...)
		cmd := exec.Command(full[0], full[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	data := filepath.Join(dir, "data")
	initArgs := []string{initdb, "-D", data, "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"}
	if o.Password != "" {
		pw := filepath.Join(dir, "pw")
		if err := os.WriteFile(pw, []byte(o.Password+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			u, _ := user.Lookup("postgres")
			uid, _ := strconv.Atoi(u.Uid)
			os.Chown(pw, uid, -1)
		}
		initArgs = append(initArgs, "--pwfile="+pw, "--auth-host=scram-sha-256", "--auth-local=trust")
	} else {
		initArgs = append(initArgs, "--auth=trust")
	}
	run(initArgs...)
	port := freePort(t)
	opts := []string{"-p " + strconv.Itoa(port), "-k " + dir, "-c listen_addresses=127.0.0.1", "-c fsync=off", "-c max_connections=20", "-c shared_buffers=16MB"}
	for _, s := range o.Settings {
		opts = append(opts, "-c "+s)
	}
	run(pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "120", "-o", strings.Join(opts, " "), "start")
	t.Cleanup(func() {
		full := append(append([]string(nil), runAs...), pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		exec.Command(full[0], full[1:]...).Run()
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
