// Package kafkadev starts a local Kafka cluster inside the process: franz-go's
// kfake, speaking the real Kafka protocol over TCP. Tests use it instead of a
// broker install, and `sluice dev kafka` serves it to try pipelines with
// kcat. It keeps everything in memory; nothing survives Close.
//
// On top of kfake it can cut the network: Cut drops every client
// connection and refuses new ones until Restore, which is how tests simulate
// a broker that goes away and comes back.
package kafkadev

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// User is a SASL user the cluster accepts.
type User struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Name      string
	Password  string
}

// Options configures StartWith. The zero value starts one broker on a free
// port of 127.0.0.1 with no topics.
type Options struct {
	// Addr is host:port of the first broker; further brokers take the
	// following ports. Port 0 picks free ports.
	Addr string
	// Brokers is the number of brokers (default 1).
	Brokers int
	// Partitions is the partition count of Topics and of auto-created
	// topics (default 1).
	Partitions int
	// Topics are created at start.
	Topics []string
	// AutoCreateTopics lets clients create topics by asking for them.
	AutoCreateTopics bool
	// Users turns SASL on and seeds these users.
	Users []User
	// TLS, when set, makes every broker listen with TLS.
	TLS *tls.Config
	// BrokerConfigs are initial broker configs (message.max.bytes...).
	BrokerConfigs map[string]string
	// Extra are further kfake options.
	Extra []kfake.Opt
}

// Cluster is a running local cluster.
type Cluster struct {
	c     *kfake.Cluster
	lns   []*gateListener
	once  sync.Once
	stop  chan struct{}
	addrs []string
}

// Start starts a one-broker cluster listening on addr ("127.0.0.1:9092";
// port 0 picks a free one) with the given topics, each with partitions
// partitions. The cluster stops when ctx ends or Close is called.
func Start(ctx context.Context, addr string, partitions int, topics ...string) (*Cluster, error) {
	return StartWith(ctx, Options{Addr: addr, Partitions: partitions, Topics: topics})
}

// StartWith starts a cluster configured by o. The cluster stops when ctx
// ends or Close is called.
func StartWith(ctx context.Context, o Options) (*Cluster, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	host, portText, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("start local kafka: invalid address %q: want host:port", o.Addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("start local kafka: invalid port in %q", o.Addr)
	}
	if o.Brokers <= 0 {
		o.Brokers = 1
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	cl := &Cluster{stop: make(chan struct{})}
	var mu sync.Mutex
	listen := func(network, kfakeAddr string) (net.Listener, error) {
		// kfake asks for 127.0.0.1:<port>; keep its port, use our host.
		_, p, _ := net.SplitHostPort(kfakeAddr)
		ln, err := net.Listen(network, net.JoinHostPort(host, p))
		if err != nil {
			return nil, err
		}
		g := &gateListener{addr: ln.Addr(), ln: ln, conns: map[net.Conn]struct{}{}}
		mu.Lock()
		cl.lns = append(cl.lns, g)
		mu.Unlock()
		return g, nil
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(o.Brokers),
		kfake.ListenFn(listen),
		kfake.DefaultNumPartitions(o.Partitions),
	}
	if port != 0 {
		ports := make([]int, o.Brokers)
		for i := range ports {
			ports[i] = port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	if o.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if len(o.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range o.Users {
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
		}
	}
	if o.TLS != nil {
		opts = append(opts, kfake.TLS(o.TLS))
	}
	if len(o.BrokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(o.BrokerConfigs))
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start local kafka on %s: %w", o.Addr, err)
	}
	cl.c = c
	cl.addrs = c.ListenAddrs()
	go func() {
		select {
		case <-ctx.Done():
			cl.Close()
		case <-cl.stop:
		}
	}()
	return cl, nil
}

// Addrs returns the brokers' host:port addresses.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// Addr returns the first broker's address.
func (c *Cluster) Addr() string { return c.addrs[0] }

// ProduceBatch appends batch, an encoded record batch sent as it is (a
// client would check or rebuild it: tests use this for batches a broker
// accepts but a consumer cannot read), to partition 0 of topic. The
// cluster must have no SASL users.
func (c *Cluster) ProduceBatch(ctx context.Context, topic string, batch []byte) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.MaxVersions(kversion.V3_6_0())) // produce by topic name
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("produce a raw batch to %s: %w", topic, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		return fmt.Errorf("produce a raw batch to %s: %w", topic, err)
	}
	return nil
}

// Kfake returns the underlying kfake cluster, for fault injection.
func (c *Cluster) Kfake() *kfake.Cluster { return c.c }

// Cut closes every client connection and stops listening (dials are
// refused) until Restore: to a client the brokers are gone.
func (c *Cluster) Cut() {
	for _, l := range c.lns {
		l.cut()
	}
}

// Restore listens again on the same addresses after Cut.
func (c *Cluster) Restore() error {
	for _, l := range c.lns {
		if err := l.restore(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the cluster. It is safe to call more than once.
func (c *Cluster) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.c.Close()
	})
}

// gateListener lets Cut take a broker off the network: it closes the real
// listener (new dials are refused) and every accepted connection, and
// Restore listens on the same address again. kfake's accept loop keeps
// calling Accept, which waits while the broker is cut.
type gateListener struct {
	addr   net.Addr
	mu     sync.Mutex
	ln     net.Listener
	down   chan struct{} // non-nil while cut; closed by restore
	closed bool
	conns  map[net.Conn]struct{}
}

func (g *gateListener) Addr() net.Addr { return g.addr }

func (g *gateListener) Accept() (net.Conn, error) {
	for {
		g.mu.Lock()
		ln, down, closed := g.ln, g.down, g.closed
		g.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if down != nil {
			<-down
			continue
		}
		conn, err := ln.Accept()
		if err != nil {
			g.mu.Lock()
			again := !g.closed && g.ln != ln || g.down != nil
			g.mu.Unlock()
			if again {
				continue // cut while accepting
			}
			return nil, err
		}
		g.mu.Lock()
		if g.down != nil || g.closed {
			g.mu.Unlock()
			conn.Close()
			continue
		}
		tc := &trackedConn{Conn: conn, g: g}
		g.conns[tc] = struct{}{}
		g.mu.Unlock()
		return tc, nil
	}
}

func (g *gateListener) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	if g.down != nil {
		close(g.down)
		g.down = nil
	}
	return g.ln.Close()
}

func (g *gateListener) cut() {
	g.mu.Lock()
	if g.down != nil || g.closed {
		g.mu.Unlock()
		return
	}
	g.down = make(chan struct{})
	g.ln.Close()
	conns := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		// Reset rather than close politely: a client then fails its next
		// write at once instead of writing into a half-closed socket, so
		// it knows its request never reached the broker.
		if tc, ok := c.(*trackedConn).Conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

func (g *gateListener) restore() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down == nil || g.closed {
		return nil
	}
	ln, err := net.Listen("tcp", g.addr.String())
	if err != nil {
		return fmt.Errorf("restore listener on %s: %w", g.addr, err)
	}
	g.ln = ln
	close(g.down)
	g.down = nil
	return nil
}

type trackedConn struct {
	net.Conn
	g    *gateListener
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.g.mu.Lock()
		delete(t.g.conns, t)
		t.g.mu.Unlock()
	})
	return t.Conn.Close()
}
