package redisconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Client is a pool of connections to one Redis server. redigo's own pool
// is not used: ending a command when its context ends needs the network
// connection under a redigo connection, which it does not expose, and the
// health check of an idle connection needs it too.
type Client struct {
	target      Target
	opts        []redis.DialOption
	dialTimeout time.Duration
	timeout     time.Duration // for one command or pipeline, from the write to the last reply
	maxIdle     int
	tls         bool

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

// conn is a redigo connection and the network connection it runs on.
type conn struct {
	redis.Conn
	nc  net.Conn // the TCP or Unix connection (under TLS when TLS is on)
	tls bool
}

// Addr is the server's address (host:port, or a socket's path).
func (cl *Client) Addr() string { return cl.target.Addr }

// DB is the database number.
func (cl *Client) DB() int { return cl.target.DB }

// errClosed is returned once Close was called.
var errClosed = errors.New("redis client closed")

// get returns an idle connection that is still open, or a new one.
func (cl *Client) get(ctx context.Context) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cl.mu.Lock()
	for len(cl.idle) > 0 {
		c := cl.idle[len(cl.idle)-1]
		cl.idle[len(cl.idle)-1] = nil
		cl.idle = cl.idle[:len(cl.idle)-1]
		// A connection the server closed while it was idle (a restart, a
		// timeout) would fail the next command for nothing.
		if c.Err() == nil && (c.tls || alive(c.nc)) {
			cl.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	closed := cl.closed
	cl.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	return cl.dial(ctx)
}

// dial opens a connection: TCP or Unix, TLS, AUTH, CLIENT SETNAME and
// SELECT, all within the dial timeout.
func (cl *Client) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.dialTimeout)
	defer cancel()
	c := &conn{}
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	opts := append(cl.opts[:len(cl.opts):len(cl.opts)], redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.nc = nc
		if dl, ok := ctx.Deadline(); ok {
			nc.SetDeadline(dl) // the TLS handshake, AUTH, CLIENT SETNAME and SELECT
		}
		return fixedDeadlines{nc}, nil
	}))
	rc, err := redis.DialContext(ctx, cl.target.Network, cl.target.Addr, opts...)
	if err != nil {
		if c.nc != nil {
			c.nc.Close()
		}
		return nil, err
	}
	c.Conn, c.tls = rc, cl.tls
	return c, nil
}

// fixedDeadlines is the connection redigo sees: it ignores redigo's
// deadlines, which redigo sets before every command sent and every reply
// read (a pipeline of 256 records would pay 512 timer updates); Client
// sets one deadline per command or pipeline on the connection under it.
type fixedDeadlines struct{ net.Conn }

func (fixedDeadlines) SetDeadline(time.Time) error      { return nil }
func (fixedDeadlines) SetReadDeadline(time.Time) error  { return nil }
func (fixedDeadlines) SetWriteDeadline(time.Time) error { return nil }

// put returns c to the pool, or closes it when it failed, the pool is
// full or closed.
func (cl *Client) put(c *conn) {
	cl.mu.Lock()
	if c.Err() == nil && !cl.closed && len(cl.idle) < cl.maxIdle {
		cl.idle = append(cl.idle, c)
		c = nil
	}
	cl.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// run runs f on a connection; when ctx ends first, the connection is
// closed, which ends f's I/O at once (f returns an error, and the
// connection is dropped).
func (cl *Client) run(ctx context.Context, f func(c redis.Conn) error) error {
	c, err := cl.get(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	c.nc.SetDeadline(time.Now().Add(cl.timeout))
	err = f(c)
	if !stop() {
		// ctx ended and the connection was closed under f: say why
		// rather than only that the socket was closed.
		c.Close()
		if err != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return err
	}
	cl.put(c)
	return err
}

// Do runs one command and returns its reply: a server error reply comes
// back as a redis.Error.
func (cl *Client) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	var reply any
	err := cl.run(ctx, func(c redis.Conn) error {
		var err error
		reply, err = c.Do(cmd, args...)
		return err
	})
	return reply, err
}

// Pipeline sends n commands in one round trip: send(i) returns the i-th
// command's name and arguments, and result(i, reply, err) receives its
// reply (err is a redis.Error for a command the server refused, or the
// failure that ended the pipeline for this command and those after it).
// It returns once every command was answered or failed.
func (cl *Client) Pipeline(ctx context.Context, n int, send func(i int) (string, []any), result func(i int, reply any, err error)) {
	done := 0
	err := cl.run(ctx, func(c redis.Conn) error {
		for i := range n {
			cmd, args := send(i)
			if err := c.Send(cmd, args...); err != nil {
				return err
			}
		}
		if err := c.Flush(); err != nil {
			return err
		}
		for ; done < n; done++ {
			reply, err := c.Receive()
			if err != nil && c.Err() != nil {
				return err // the connection failed: no later reply comes
			}
			result(done, reply, err)
		}
		return nil
	})
	if err != nil {
		for i := done; i < n; i++ {
			result(i, nil, err)
		}
	}
}

// Ping checks that the server answers and accepts the credentials: it
// opens a connection (AUTH, SELECT) and sends PING.
func (cl *Client) Ping(ctx context.Context, what string) error {
	if _, err := cl.Do(ctx, "PING"); err != nil {
		return Classify(fmt.Errorf("%s: %w", what, err), false)
	}
	return nil
}

// Close closes the idle connections; those in use are closed when their
// command returns.
func (cl *Client) Close() error {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle, cl.closed = nil, true
	cl.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return nil
}
