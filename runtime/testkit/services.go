package testkit

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Integration reports whether SLUICE_INTEGRATION=1: tests that need a local
// service then fail when it is unreachable instead of skipping (.ci/run sets
// it after starting the services).
func Integration() bool { return os.Getenv("SLUICE_INTEGRATION") == "1" }

// Service checks that a TCP service answers at addr. When it does not, the
// test is skipped with a message that says how to run it, or fails under
// SLUICE_INTEGRATION=1.
func Service(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if Integration() {
			t.Fatalf("%s is required at %s (SLUICE_INTEGRATION=1) but unreachable: %v; .ci/services starts it", name, addr, err)
		}
		t.Skipf("%s not reachable at %s, skipping (start it with .ci/services, or set SLUICE_INTEGRATION=1 to fail instead): %v", name, addr, err)
	}
	c.Close()
}

// Postgres returns the DSN of the local PostgreSQL (SLUICE_TEST_POSTGRES,
// default postgres://postgres@127.0.0.1:5432/test), skipping or failing as
// Service does when it is down.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := cmp.Or(os.Getenv("SLUICE_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	Service(t, "PostgreSQL", hostOf(t, dsn, "127.0.0.1:5432"))
	return dsn
}

// MariaDB returns the go-sql-driver DSN of the local MariaDB
// (SLUICE_TEST_MARIADB, default root@tcp(127.0.0.1:3306)/test).
func MariaDB(t testing.TB) string {
	t.Helper()
	dsn := cmp.Or(os.Getenv("SLUICE_TEST_MARIADB"), "root@tcp(127.0.0.1:3306)/test")
	addr := "127.0.0.1:3306"
	if i, j := strings.Index(dsn, "tcp("), strings.Index(dsn, ")/"); i >= 0 && j > i {
		addr = dsn[i+4 : j]
	}
	Service(t, "MariaDB", addr)
	return dsn
}

// Redis returns the URL of the local Redis (SLUICE_TEST_REDIS, default
// redis://127.0.0.1:6379/0).
func Redis(t testing.TB) string {
	t.Helper()
	u := cmp.Or(os.Getenv("SLUICE_TEST_REDIS"), "redis://127.0.0.1:6379/0")
	Service(t, "Redis", hostOf(t, u, "127.0.0.1:6379"))
	return u
}

// RabbitMQ returns the AMQP URL of the local RabbitMQ (SLUICE_TEST_RABBITMQ,
// default amqp://guest:guest@127.0.0.1:5672/).
func RabbitMQ(t testing.TB) string {
	t.Helper()
	u := cmp.Or(os.Getenv("SLUICE_TEST_RABBITMQ"), "amqp://guest:guest@127.0.0.1:5672/")
	Service(t, "RabbitMQ", hostOf(t, u, "127.0.0.1:5672"))
	return u
}

// MQTT returns the URL of the local Mosquitto (SLUICE_TEST_MQTT, default
// tcp://127.0.0.1:1883).
func MQTT(t testing.TB) string {
	t.Helper()
	u := cmp.Or(os.Getenv("SLUICE_TEST_MQTT"), "tcp://127.0.0.1:1883")
	Service(t, "MQTT broker", hostOf(t, u, "127.0.0.1:1883"))
	return u
}

// NATS returns the URL of the local NATS server with JetStream
// (SLUICE_TEST_NATS, default nats://127.0.0.1:4222).
func NATS(t testing.TB) string {
	t.Helper()
	u := cmp.Or(os.Getenv("SLUICE_TEST_NATS"), "nats://127.0.0.1:4222")
	Service(t, "NATS", hostOf(t, u, "127.0.0.1:4222"))
	return u
}

func hostOf(t testing.TB, raw, def string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return def
	}
	return u.Host
}

// Unique returns a name for a per-test resource (a table, a queue, a
// stream, a consumer group): prefix, the test's name reduced to
// [a-z0-9_], and a random suffix, at most 60 characters, so that tests run
// in any order, in parallel, and again on a server that kept the last run's
// leftovers.
func Unique(t testing.TB, prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s_%s_%06d", prefix, strings.Trim(name, "_"), rand.IntN(1e6))
}

// TaskCopy writes a copy of the task file at path into a temporary
// directory with each old string of oldNew (pairs: old, new) replaced, and
// returns the copy's path. Each old string must occur. Tests use it to give
// a shared example task ids that concurrent runs on the same server must
// not share (a binlog replica's server_id), which environment variables
// cannot set in a number key. Paths relative to the task resolve against
// the copy's directory.
func TaskCopy(t testing.TB, path string, oldNew ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %q to replace", path, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// ReplicaID returns a random binlog replica id (server_id) above 2^31,
// where neither servers' usual ids nor Sluice's derived ones (1e9 to 2e9) lie, so
// tests run concurrently against one server do not drop each other's
// stream.
func ReplicaID() uint32 {
	return 1<<31 + rand.Uint32N(1<<31-1)
}
