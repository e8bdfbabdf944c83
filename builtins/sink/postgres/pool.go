package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
)

// pool holds the sink's connections: at most size of them, shared by the
// task's workers, each used by one at a time.
type pool struct {
	dial  func(context.Context) (*pgconn.PgConn, error)
	slots chan struct{} // a token per caller holding or opening a connection

	mu      sync.Mutex
	idle    []*conn       // the most recently used last: it is taken first
	maxIdle time.Duration // an idle connection is closed after this long
	reaper  *time.Timer   // runs reap while connections are idle
	closed  bool
}

// conn is a connection of the pool.
type conn struct {
	*pgconn.PgConn
	opened, idleSince time.Time
}

const (
	// pingIdle: a connection idle longer is pinged before use, so that one
	// the server dropped meanwhile (a restart, an idle timeout) is replaced
	// instead of failing the next batch.
	pingIdle = time.Second
	// maxLife: a connection this old is closed when returned, so that none
	// lives forever on the server (pgxpool's default, kept).
	maxLife = time.Hour
	// maxIdle: a connection unused this long is closed, so that a sink
	// with nothing to write (an edge box's quiet night) holds no server
	// slots (pgxpool's default, kept). The next batch opens one again.
	maxIdle = 30 * time.Minute
)

var (
	errPoolClosed = errors.New("connection pool closed")
	// errCommitRollback: COMMIT of a transaction that had failed, which the
	// server turns into a ROLLBACK.
	errCommitRollback = errors.New("commit unexpectedly resulted in rollback")
)

func newPool(size int, dial func(context.Context) (*pgconn.PgConn, error)) *pool {
	return &pool{dial: dial, slots: make(chan struct{}, size), maxIdle: maxIdle}
}

// acquire returns a connection for the caller's use alone, waiting for one
// while size are in use (or until ctx ends). An idle connection is reused,
// the most recent first; a new one is opened when none is left.
//
// A slot is taken per caller and given back by release, while an idle
// connection holds none: a caller opens a connection only when it finds no
// idle one, so idle and held connections together never exceed size.
func (p *pool) acquire(ctx context.Context) (*conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, errPoolClosed
		}
		if len(p.idle) == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		if c.IsClosed() || time.Since(c.idleSince) > pingIdle && c.Ping(ctx) != nil {
			closeConn(c.PgConn)
			if err := ctx.Err(); err != nil {
				<-p.slots
				return nil, err
			}
			continue
		}
		return c, nil
	}
	pc, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return &conn{PgConn: pc, opened: time.Now()}, nil
}

// release gives back a connection acquire returned. One that is broken
// (closed, left in a transaction or a query, or said so by the caller),
// too old, or given back after close is closed.
func (p *pool) release(c *conn, broken bool) {
	defer func() { <-p.slots }()
	broken = broken || c.IsClosed() || c.IsBusy() || c.TxStatus() != 'I' || time.Since(c.opened) > maxLife
	p.mu.Lock()
	if broken || p.closed {
		p.mu.Unlock()
		closeConn(c.PgConn)
		return
	}
	c.idleSince = time.Now()
	p.idle = append(p.idle, c)
	if p.reaper == nil {
		p.reaper = time.AfterFunc(p.maxIdle, p.reap)
	}
	p.mu.Unlock()
}

// reap closes the connections idle for maxIdle or more and, while others
// are idle, comes back when the oldest of them will be.
func (p *pool) reap() {
	p.mu.Lock()
	now := time.Now()
	// idle is in the order connections were released: the stale ones first.
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.maxIdle {
		n++
	}
	stale := slices.Clone(p.idle[:n])
	p.idle = slices.Delete(p.idle, 0, n)
	p.reaper = nil
	if len(p.idle) > 0 && !p.closed {
		p.reaper = time.AfterFunc(p.maxIdle-now.Sub(p.idle[0].idleSince), p.reap)
	}
	p.mu.Unlock()
	for _, c := range stale {
		closeConn(c.PgConn)
	}
}

// close closes the idle connections now and the others as they are
// released; acquire fails from now on.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		closeConn(c.PgConn)
	}
}

// closeConn says goodbye to the server (bounded: a server that stopped
// reading must not hold the caller) and closes the connection.
func closeConn(c *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

// tx runs fn in a transaction on a connection of the pool: BEGIN, fn's
// statements, COMMIT, or ROLLBACK when fn fails (fn's error is returned).
// A connection whose ROLLBACK fails is in an unknown state: it is closed.
func (p *pool) tx(ctx context.Context, fn func(c *pgconn.PgConn) error) (err error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	broken := false
	defer func() { p.release(c, broken) }()
	if _, err := pgconnect.Exec(ctx, c.PgConn, "begin"); err != nil {
		return err
	}
	if err := fn(c.PgConn); err != nil {
		if _, rerr := pgconnect.Exec(ctx, c.PgConn, "rollback"); rerr != nil {
			broken = true
		}
		return err
	}
	tag, err := pgconnect.Exec(ctx, c.PgConn, "commit")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return errCommitRollback
	}
	return nil
}

// run lends fn a connection of the pool, outside any transaction.
func (p *pool) run(ctx context.Context, fn func(c *pgconn.PgConn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(c, false)
	return fn(c.PgConn)
}
