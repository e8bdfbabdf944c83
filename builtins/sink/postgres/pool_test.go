package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/builtins/internal/sqlsink"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// sinkAndDialect builds the sink as Register does, and returns its dialect
// too, for a test that looks at the pool.
func (e *pgEnv) sinkAndDialect(t *testing.T, dsn, extra string) (component.Sink, *dialect) {
	t.Helper()
	c, p := componenttest.Decode(t, Register, component.KindSink, Name, fmt.Sprintf("dsn = %q\n%s", dsn, extra))
	if p.Len() > 0 {
		t.Fatalf("config problems: %v", p.List())
	}
	cfg := c.(*sqlsink.Config)
	d := &dialect{cfg: cfg}
	return sqlsink.New(cfg, d, zerolog.New(zerolog.NewTestWriter(t)), "postgres sink"), d
}

// withParams returns dsn (a URL) with the query parameters added.
func withParams(t testing.TB, dsn string, kv ...string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// backends returns the server processes of the application name, for the
// connections the sink holds.
func (e *pgEnv) backends(app string) []int32 {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid", app)
	if err != nil {
		e.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		e.t.Fatal(err)
	}
	return pids
}

// idSink opens a sink of maxConns connections, named by a unique
// application_name, that writes the id column of a new table.
func (e *pgEnv) idSink(t *testing.T, maxConns int) (s component.Sink, d *dialect, app, tbl string) {
	t.Helper()
	tbl = e.table("id int PRIMARY KEY")
	app = testkit.Unique(t, "app")
	s, d = e.sinkAndDialect(t, withParams(t, e.dsn, "application_name", app), fmt.Sprintf("table = %q\nmax_conns = %d\ncolumns = { id = \"$.id\" }", tbl, maxConns))
	open(t, s)
	return s, d, app, tbl
}

// countDials makes d's pool count the connections it opens from now on.
func countDials(d *dialect) *atomic.Int32 {
	var n atomic.Int32
	dial := d.pool.dial
	d.pool.dial = func(ctx context.Context) (*pgconn.PgConn, error) {
		n.Add(1)
		return dial(ctx)
	}
	return &n
}

// TestPoolMaxConns has more writers than max_conns wait on a table lock:
// max_conns connections reach the server (whatever the DSN's pgxpool
// setting says) while the other writers wait for one, and when the lock
// goes every write completes on those same connections.
func TestPoolMaxConns(t *testing.T) {
	e := newPG(t)
	tbl := e.table("id int PRIMARY KEY, v text")
	app := testkit.Unique(t, "app")
	const maxConns, writers = 2, 6
	dsn := withParams(t, e.dsn, "application_name", app, "pool_max_conns", "10", "pool_min_conns", "5")
	s, d := e.sinkAndDialect(t, dsn, fmt.Sprintf("table = %q\nmax_conns = %d\ncolumns = { id = \"$.id\", v = \"$.v\" }", tbl, maxConns))
	open(t, s)
	dials := countDials(d)

	lock, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.Background())
	tx, err := lock.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(context.Background(), "LOCK TABLE "+tbl+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			errs <- write(t, s, fmt.Sprintf(`{"id":%d,"v":"w"}`, i))
		}()
	}
	var waiting int
	testkit.WaitFor(t, fmt.Sprintf("%d of the sink's connections to wait on the lock and the other writers on the pool", maxConns), func() bool {
		if err := e.db.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", app).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > maxConns {
			t.Fatalf("%d of the sink's connections wait on the lock, max_conns is %d", waiting, maxConns)
		}
		return waiting == maxConns && testkit.Blocked("(*pool).acquire")
	})
	held := e.backends(app)
	if len(held) != maxConns {
		t.Fatalf("%d writers, max_conns %d: the server has %d connections of the sink (%v)", writers, maxConns, len(held), held)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.dump(tbl, "id"); strings.Count(got, `"v":"w"`) != writers {
		t.Fatalf("rows: %s", got)
	}
	if after := e.backends(app); fmt.Sprint(after) != fmt.Sprint(held) {
		t.Fatalf("the sink's connections were %v while the writers waited, %v after", held, after)
	}
	// Open's connection is one of the two: one more was opened.
	if n := dials.Load(); n != maxConns-1 {
		t.Fatalf("the pool opened %d connections for %d writers, want %d", n, writers, maxConns-1)
	}
}

// TestPoolReplacesDeadIdleConnection: a connection the server ended while
// it sat idle (a restart, pg_terminate_backend) is found out by the ping
// that precedes the use of a connection idle for over pingIdle, and
// replaced: the next batch does not fail.
func TestPoolReplacesDeadIdleConnection(t *testing.T) {
	e := newPG(t)
	s, d, app, tbl := e.idSink(t, 1)
	if err := write(t, s, `{"id":1}`); err != nil {
		t.Fatal(err)
	}
	before := e.backends(app)
	if len(before) != 1 {
		t.Fatalf("backends %v, want the sink's one", before)
	}
	e.exec("SELECT pg_terminate_backend($1)", before[0])
	testkit.WaitFor(t, "the terminated backend to go", func() bool { return len(e.backends(app)) == 0 })
	// As if the connection had been idle that long since: no waiting.
	d.pool.mu.Lock()
	for _, c := range d.pool.idle {
		c.idleSince = c.idleSince.Add(-2 * pingIdle)
	}
	d.pool.mu.Unlock()
	if err := write(t, s, `{"id":2}`); err != nil {
		t.Fatalf("the batch after the idle connection was terminated: %v", err)
	}
	if after := e.backends(app); len(after) != 1 || after[0] == before[0] {
		t.Fatalf("backends %v after, %v before: want a new one", after, before)
	}
	if got := e.dump(tbl, "id"); got != `[{"id":1}, {"id":2}]` {
		t.Fatal(got)
	}
}

// TestPoolClosesIdleConnections: a sink with nothing to write closes its
// connections after maxIdle, with no batch to prompt it, and the next batch
// opens one again.
func TestPoolClosesIdleConnections(t *testing.T) {
	e := newPG(t)
	s, d, app, tbl := e.idSink(t, 2)
	setMaxIdle(d.pool, 100*time.Millisecond)
	if err := write(t, s, `{"id":1}`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the idle sink to close its connection", func() bool { return len(e.backends(app)) == 0 })
	if err := write(t, s, `{"id":2}`); err != nil {
		t.Fatalf("the batch after the idle connection was closed: %v", err)
	}
	if got := e.dump(tbl, "id"); got != `[{"id":1}, {"id":2}]` {
		t.Fatal(got)
	}
}

// setMaxIdle shortens p's idle time for a test, the reaper's wait included
// if a connection is idle already (the sink's open leaves one).
func setMaxIdle(p *pool, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxIdle = d
	if p.reaper != nil {
		p.reaper.Reset(d)
	}
}

// TestPoolReapLeavesHeldConnections: the idle connections are all closed in
// time, released at different moments, while one held meanwhile stays open
// and usable.
func TestPoolReapLeavesHeldConnections(t *testing.T) {
	e := newPG(t)
	p := newTestPool(t, 3)
	setMaxIdle(p, 100*time.Millisecond)
	var cs []*conn
	for range 3 {
		c, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	// The server tells when a connection has gone: the pool's connections
	// are not for the test to look at while the reaper closes them.
	gone := func(c *conn) func() bool {
		pid := c.PID()
		return func() bool {
			var n int
			if err := e.db.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 0
		}
	}
	p.release(cs[0], false)
	testkit.WaitFor(t, "the first idle connection to be closed", gone(cs[0]))
	p.release(cs[1], false)
	testkit.WaitFor(t, "the second idle connection to be closed", gone(cs[1]))
	p.mu.Lock()
	idle, armed := len(p.idle), p.reaper != nil
	p.mu.Unlock()
	if idle != 0 || armed {
		t.Fatalf("%d idle connections, reaper armed %v after the idle ones were closed", idle, armed)
	}
	if _, err := pgconnect.Exec(context.Background(), cs[2].PgConn, "select 1"); err != nil {
		t.Fatalf("the held connection: %v", err)
	}
	p.release(cs[2], false)
}

// newTestPool returns a pool of connections to the test server.
func newTestPool(t *testing.T, max int) *pool {
	t.Helper()
	cc, err := pgconnect.Config(pgconnect.Settings{DSN: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(max, func(ctx context.Context) (*pgconn.PgConn, error) { return pgconn.ConnectConfig(ctx, cc) })
	t.Cleanup(p.close)
	return p
}

// TestPoolAcquireHonoursContext: a caller waiting for a connection gives up
// when its context ends, and the connection stays usable.
func TestPoolAcquireHonoursContext(t *testing.T) {
	p := newTestPool(t, 1)
	c, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := p.acquire(ctx)
		got <- err
	}()
	testkit.WaitBlocked(t, "(*pool).acquire")
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context: %v", err)
	}
	pid := c.PID()
	p.release(c, false)
	if c, err = p.acquire(context.Background()); err != nil || c.PID() != pid {
		t.Fatalf("acquire after release: %v, want the same connection again (pid %d)", err, pid)
	}
	p.release(c, false)
}

// TestPoolDiscardsBrokenConnections: a connection left in a transaction, one
// whose ROLLBACK failed, one its caller says is broken are closed, not
// reused; one whose transaction rolled back cleanly is reused. After close,
// acquire fails and a connection given back is closed.
func TestPoolDiscardsBrokenConnections(t *testing.T) {
	p := newTestPool(t, 2)
	ctx := context.Background()
	acquire := func() *conn {
		t.Helper()
		c, err := p.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	idle := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle)
	}

	c := acquire()
	if _, err := pgconnect.Exec(ctx, c.PgConn, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	p.release(c, false)
	if !c.IsClosed() || idle() != 0 {
		t.Fatalf("a connection given back inside a transaction: closed %v, idle %d", c.IsClosed(), idle())
	}

	c = acquire()
	p.release(c, true)
	if !c.IsClosed() || idle() != 0 {
		t.Fatalf("a connection given back broken: closed %v, idle %d", c.IsClosed(), idle())
	}

	failed := errors.New("the batch failed")
	var pid uint32
	if err := p.tx(ctx, func(c *pgconn.PgConn) error {
		pid = c.PID()
		if _, err := pgconnect.Exec(ctx, c, "SELECT 1/0"); err == nil {
			t.Error("SELECT 1/0 did not fail")
		}
		return failed
	}); err != failed {
		t.Fatalf("tx: %v, want fn's error", err)
	}
	var reused uint32
	if err := p.tx(ctx, func(c *pgconn.PgConn) error { reused = c.PID(); return nil }); err != nil || reused != pid {
		t.Fatalf("after a clean ROLLBACK: %v, pid %d, want the same connection (%d)", err, reused, pid)
	}

	var dead *pgconn.PgConn
	if err := p.tx(ctx, func(c *pgconn.PgConn) error {
		dead = c
		c.Conn().Close() // ROLLBACK cannot be sent
		return failed
	}); err != failed {
		t.Fatalf("tx: %v, want fn's error", err)
	}
	if !dead.IsClosed() || idle() != 0 {
		t.Fatalf("after a failed ROLLBACK: closed %v, idle %d", dead.IsClosed(), idle())
	}
	if err := p.tx(ctx, func(c *pgconn.PgConn) error {
		_, err := pgconnect.Exec(ctx, c, "SELECT 1")
		return err
	}); err != nil {
		t.Fatalf("a transaction after the broken connections: %v", err)
	}

	// COMMIT of a failed transaction is a ROLLBACK: an error.
	if err := p.tx(ctx, func(c *pgconn.PgConn) error {
		pgconnect.Exec(ctx, c, "SELECT 1/0")
		return nil
	}); !errors.Is(err, errCommitRollback) {
		t.Fatalf("commit of a failed transaction: %v", err)
	}

	c = acquire()
	spare := acquire()
	p.release(spare, false)
	kept := idle()
	p.close()
	if kept != 1 || idle() != 0 || !spare.IsClosed() {
		t.Fatalf("idle connections: %d before close, %d after (closed: %v)", kept, idle(), spare.IsClosed())
	}
	if _, err := p.acquire(ctx); !errors.Is(err, errPoolClosed) {
		t.Fatalf("acquire after close: %v", err)
	}
	p.release(c, false)
	if !c.IsClosed() {
		t.Fatal("a connection given back after close stays open")
	}
}

// TestAwkwardKeyNames upserts into a table whose primary key columns have
// names that need quoting in SQL and escaping in a text[] literal, in an
// order other than the columns': the key is read from the catalog as it
// is.
func TestAwkwardKeyNames(t *testing.T) {
	e := newPG(t)
	names := []string{`we"ird`, `a,b`, `sp ace`, `{braced}`, `back\slash`}
	tbl := e.table(fmt.Sprintf("%s int, %s int, %s int, %s int, %s int, v text, PRIMARY KEY (%s, %s, %s, %s, %s)",
		quote(names[0]), quote(names[1]), quote(names[2]), quote(names[3]), quote(names[4]),
		quote(names[4]), quote(names[2]), quote(names[0]), quote(names[3]), quote(names[1])))
	var cols []string
	for i, n := range names {
		cols = append(cols, fmt.Sprintf("%q = \"$.k%d\"", n, i))
	}
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { %s, v = \"$.v\" }", tbl, strings.Join(cols, ", ")))
	open(t, s)
	if err := write(t, s, `{"k0":1,"k1":2,"k2":3,"k3":4,"k4":5,"v":"a"}`, `{"k0":1,"k1":2,"k2":3,"k3":4,"k4":6,"v":"b"}`); err != nil {
		t.Fatal(err)
	}
	if err := write(t, s, `{"k0":1,"k1":2,"k2":3,"k3":4,"k4":5,"v":"a2"}`); err != nil {
		t.Fatal(err)
	}
	got := e.dump(tbl, quote(names[4]))
	want := `[{"we\"ird":1,"a,b":2,"sp ace":3,"{braced}":4,"back\\slash":5,"v":"a2"}, {"we\"ird":1,"a,b":2,"sp ace":3,"{braced}":4,"back\\slash":6,"v":"b"}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
