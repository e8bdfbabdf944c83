package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/amqpconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Register adds the rabbitmq sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "rabbitmq",
		Summary: "Publish records to a RabbitMQ exchange, persistent and with publisher confirms; exchange, routing key and headers may be templates.",
		Description: "Publishes each record's payload to `exchange` with `routing_key` (templates over the original source " +
			"event), as persistent messages, and returns once the broker confirmed every one (publisher confirms). A " +
			"mandatory message no queue receives comes back and goes to the dead-letter queue; refused credentials or a " +
			"missing exchange stop the task; a lost connection is reopened and the batch retried. A missing exchange or " +
			"queue is declared unless `declare = false`. See docs/connectors/rabbitmq.md.",
		Example: `[sink]
type = "rabbitmq"
url = "amqp://guest:guest@127.0.0.1:5672/"
exchange = "orders"
routing_key = "orders.${region}"
variables = { region = "$.data.region" }
headers = { source = "sluice" }
`,
		New:   newConfig,
		Build: build,
	})
}

// Sink is the rabbitmq sink.
type Sink struct {
	cfg   *Config
	log   zerolog.Logger
	conn  amqpconf.Conn
	where string
	tpl   *templates
	m     sinkMetrics

	mu        sync.Mutex
	cur       *connection
	closed    bool
	exchanges map[string]bool // exchanges known to exist
	topology  sync.Mutex      // one declaration at a time
}

// connection is one AMQP connection with its idle publishing channels.
type connection struct {
	conn *amqp.Connection
	dead chan struct{}
	idle []*pubChannel // guarded by Sink.mu
	// maxBody is the broker's max_message_size once a refusal told it (0:
	// not known yet). AMQP 0-9-1 does not announce it; it is learned per
	// connection, so a broker restarted with another limit is learned again.
	maxBody atomic.Int64
}

func (c *connection) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

type sinkMetrics struct {
	messages   metrics.Counter
	errors     *metrics.CounterVec // error_type
	latency    metrics.Observer
	reconnects metrics.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	tpl, ok := cfg.compile(nil, env.MaxEvent)
	if !ok {
		return nil, errors.New("rabbitmq sink: invalid templates") // Validate reported the details
	}
	s := &Sink{
		cfg: cfg,
		log: env.Logger,
		conn: amqpconf.Conn{URL: cfg.URL, TLS: cfg.TLS, Heartbeat: cfg.Heartbeat.D(), DialTimeout: cfg.DialTimeout.D(),
			Name: "sluice " + env.Task + " sink", Dir: env.Dir},
		where:     amqpconf.Redact(cfg.URL),
		tpl:       tpl,
		exchanges: map[string]bool{"": true},
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sinkMetrics{
		messages:   ms.Counter("rabbitmq_publisher_messages_total", "Messages the broker confirmed.", "task").WithLabelValues(lbl),
		errors:     ms.Counter("rabbitmq_publisher_errors_total", "Messages that failed to publish, by error class.", "task", "error_type").Curry(lbl),
		latency:    ms.Histogram("rabbitmq_publish_seconds", "Time for one Write, from the first publish to the last confirm.", nil, "task").WithLabelValues(lbl),
		reconnects: ms.Counter("rabbitmq_publisher_reconnects_total", "Connections reopened after the last one was lost.", "task").WithLabelValues(lbl),
	}
	return s, nil
}

// Open connects, checks (or declares) a fixed exchange and the queue, and
// opens a first channel in confirm mode. Refused credentials and a missing
// exchange or queue with declare = false fail the task.
func (s *Sink) Open(ctx context.Context) error {
	c, err := s.connection(ctx, false)
	if err != nil {
		return fmt.Errorf("open rabbitmq sink: %w", err)
	}
	if c == nil {
		return nil // closed meanwhile
	}
	pc, err := s.channel(c)
	if err != nil {
		return fmt.Errorf("open rabbitmq sink: %w", err)
	}
	s.release(c, pc)
	s.log.Info().Str("url", s.where).Str("exchange", s.cfg.Exchange).Str("queue", s.cfg.Queue).Msg("rabbitmq sink connected (publisher confirms)")
	return nil
}

// connection returns the live connection, dialing one (and checking the
// topology) when there is none. Dialing stops waiting when ctx ends.
func (s *Sink) connection(ctx context.Context, reconnect bool) (*connection, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("rabbitmq sink: Write after Close")
	}
	if s.cur != nil && !s.cur.isDead() {
		c := s.cur
		s.mu.Unlock()
		return c, nil
	}
	reconnect = reconnect || s.cur != nil
	s.mu.Unlock()

	type result struct {
		c   *connection
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := s.dial()
		res <- result{c, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-ctx.Done():
		go func() {
			if r := <-res; r.c != nil {
				_ = r.c.conn.Close()
			}
		}()
		return nil, component.Retryable(fmt.Errorf("connect to RabbitMQ at %s: %w", s.where, ctx.Err()), 0)
	}
	if r.err != nil {
		return nil, r.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = r.c.conn.Close()
		return nil, nil
	}
	if s.cur != nil && !s.cur.isDead() {
		// Another Write reconnected first.
		_ = r.c.conn.Close()
		return s.cur, nil
	}
	s.cur = r.c
	if reconnect {
		s.m.reconnects.Inc()
		s.log.Info().Str("url", s.where).Msg("rabbitmq sink reconnected")
	}
	return r.c, nil
}

// dial connects and checks the fixed topology.
func (s *Sink) dial() (*connection, error) {
	conn, err := s.conn.Dial()
	if err != nil {
		return nil, err
	}
	c := &connection{conn: conn, dead: make(chan struct{})}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		e := <-closed
		close(c.dead)
		if e != nil {
			s.mu.Lock()
			stopping := s.closed
			s.mu.Unlock()
			if !stopping {
				s.log.Warn().Err(e).Str("url", s.where).Msg("rabbitmq sink connection lost; the next write reconnects")
			}
		}
	}()
	if err := s.checkTopology(c); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

func (s *Sink) checkTopology(c *connection) error {
	cfg := s.cfg
	ch, err := c.conn.Channel()
	if err != nil {
		return component.Retryable(fmt.Errorf("open a channel on %s: %w", s.where, err), 0)
	}
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	if cfg.Queue != "" {
		if ch, err = amqpconf.EnsureQueue(c.conn, ch, cfg.Queue, cfg.QueueType, cfg.Declare, s.log, s.where); err != nil {
			return err
		}
	}
	if s.tpl.exchange.IsFixed {
		if ch, err = amqpconf.EnsureExchange(c.conn, ch, s.tpl.exchange.Fixed, cfg.ExchangeType, cfg.Declare, s.log, s.where); err != nil {
			return err
		}
		s.mu.Lock()
		s.exchanges[s.tpl.exchange.Fixed] = true
		s.mu.Unlock()
	}
	return nil
}

// missingExchange reads the broker's reason for closing a channel that
// published to an exchange that does not exist ("NOT_FOUND - no exchange
// 'orders' in vhost '/'").
var missingExchange = regexp.MustCompile(`no exchange '(.*)' in vhost`)

// forgetExchange notes that the broker said an exchange this sink knew to
// exist is gone (deleted, or auto-deleted): the next Write that routes to it
// checks it again, declaring it when declare is on, instead of failing on
// it for good.
func (s *Sink) forgetExchange(err error) {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		return
	}
	m := missingExchange.FindStringSubmatch(ae.Reason)
	if m == nil {
		return
	}
	s.mu.Lock()
	delete(s.exchanges, m[1])
	s.mu.Unlock()
}

// ensureExchange checks, once per name, that an exchange a template
// rendered exists (declaring it when declare is on). A missing one fails
// only the records routed to it.
func (s *Sink) ensureExchange(c *connection, name string) error {
	s.mu.Lock()
	known := s.exchanges[name]
	s.mu.Unlock()
	if known {
		return nil
	}
	s.topology.Lock()
	defer s.topology.Unlock()
	ch, err := c.conn.Channel()
	if err != nil {
		return component.Retryable(fmt.Errorf("open a channel on %s: %w", s.where, err), 0)
	}
	ch, err = amqpconf.EnsureExchange(c.conn, ch, name, s.cfg.ExchangeType, s.cfg.Declare, s.log, s.where)
	if ch != nil {
		_ = ch.Close()
	}
	if err != nil {
		if component.ClassOf(err) == component.ClassTaskPermanent && !s.tpl.exchange.IsFixed {
			// Other records may route to exchanges that exist.
			return component.EventPermanent(err)
		}
		return err
	}
	s.mu.Lock()
	s.exchanges[name] = true
	s.mu.Unlock()
	return nil
}

// Write publishes msgs and returns once the broker confirmed every one.
// Per-record failures (unroutable, a missing templated exchange, a nack)
// come back as a *component.RecordErrors with classified errors.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	c, err := s.connection(ctx, false)
	if err != nil {
		return err
	}
	if c == nil {
		return errors.New("rabbitmq sink: Write after Close")
	}
	start := time.Now()
	pubs := make([]publishing, len(msgs))
	var prep map[int]error
	fail := func(i int, err error) {
		if prep == nil {
			prep = map[int]error{}
		}
		prep[i] = err
		pubs[i].skip = true
	}
	var buf []byte
	for i := range msgs {
		var err error
		if buf, err = s.prepare(&pubs[i], &msgs[i], buf); err != nil {
			fail(i, component.EventPermanent(fmt.Errorf("event %s: %w", msgs[i].Pos, err)))
			continue
		}
		if err := checkShortstrs(&pubs[i]); err != nil {
			// The client refuses it before sending (a header or message_id
			// refused mid-message would break the connection): it can never
			// be published.
			fail(i, component.EventPermanent(fmt.Errorf("event %s: %w", msgs[i].Pos, err)))
			continue
		}
		if err := checkHeaderFrame(&pubs[i], c.conn.Config.FrameSize); err != nil {
			// The broker would close the whole connection (501
			// frame_too_large), failing every record in flight on it,
			// and again on each retry.
			fail(i, component.EventPermanent(fmt.Errorf("event %s: %w", msgs[i].Pos, err)))
			continue
		}
		if pubs[i].exchange != "" {
			if err := s.ensureExchange(c, pubs[i].exchange); err != nil {
				if component.ClassOf(err) != component.ClassEventPermanent {
					return err
				}
				fail(i, fmt.Errorf("event %s: %w", msgs[i].Pos, err))
			}
		}
	}
	res := make([]result, len(pubs))
	var pending error // the failure of the records left unconfirmed after a retried round
	for round := 0; ; round++ {
		// Bodies over the broker's limit, once known, are not sent: the
		// broker would close the channel on each.
		if limit := c.maxBody.Load(); limit > 0 {
			for i := range pubs {
				if n := len(pubs[i].pub.Body); !pubs[i].skip && !pubs[i].done && int64(n) > limit {
					fail(i, component.EventPermanent(fmt.Errorf("event %s: the body is %d bytes, over the broker's max_message_size (%d bytes): the broker refuses it (406 PRECONDITION_FAILED); shrink the record or raise max_message_size in rabbitmq.conf", msgs[i].Pos, n, limit)))
				}
			}
		}
		pc, err := s.channel(c)
		if err != nil {
			if round > 0 {
				pending = err
				break
			}
			return err
		}
		rr, err := pc.publish(ctx, s.cfg, pubs, s.cfg.ConfirmTimeout.D())
		for i := range rr {
			if rr[i].confirmed {
				res[i], pubs[i].done = rr[i], true
			}
		}
		if err == nil {
			s.release(c, pc)
			break
		}
		// The channel's state is unknown (confirms outstanding, or it
		// closed): it is not reused.
		go func() { _ = pc.ch.Close() }()
		if limit, ok := maxSizeRefused(err); ok && round == 0 {
			// A body over max_message_size closed the channel. The broker
			// said its limit: the bodies over it fail alone, the records
			// it did not confirm are published again on a new channel (one
			// it routed before the close may then arrive twice).
			c.maxBody.Store(limit)
			continue
		}
		s.forgetExchange(err)
		if c.isDead() || errors.Is(err, amqp.ErrClosed) {
			err = component.Retryable(fmt.Errorf("publish to %s: connection lost: %w", s.where, err), 0)
		}
		if round > 0 {
			// Records confirmed in the first round are delivered: only
			// the others are retried.
			pending = err
			break
		}
		return err
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	re := &component.RecordErrors{Errs: prep}
	for i := range res {
		switch {
		case pubs[i].skip:
		case !pubs[i].done:
			if re.Errs == nil {
				re.Errs = map[int]error{}
			}
			re.Errs[i] = fmt.Errorf("event %s: %w", msgs[i].Pos, pending)
		case res[i].returned != nil:
			if re.Errs == nil {
				re.Errs = map[int]error{}
			}
			r := res[i].returned
			re.Errs[i] = component.EventPermanent(fmt.Errorf("event %s: unroutable: exchange %q has no queue bound for routing key %q (%d %s); bind a queue, fix routing_key, or set mandatory = false to drop such messages",
				msgs[i].Pos, r.Exchange, r.RoutingKey, r.ReplyCode, r.ReplyText))
		case !res[i].acked:
			if re.Errs == nil {
				re.Errs = map[int]error{}
			}
			re.Errs[i] = component.Retryable(fmt.Errorf("event %s: the broker refused the message (basic.nack): it could not store it", msgs[i].Pos), 0)
		}
	}
	s.m.messages.Add(uint64(len(msgs) - len(re.Errs)))
	if len(re.Errs) == 0 {
		return nil
	}
	for _, err := range re.Errs {
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Inc()
	}
	return re
}

// publishing is one message ready to publish.
type publishing struct {
	exchange, key string
	pub           amqp.Publishing
	skip          bool // failed before publishing
	done          bool // confirmed by the broker
}

// shortstrMax is the longest AMQP 0-9-1 short string: exchange and queue
// names, routing keys, message properties such as message_id and
// content_type, and header names.
const shortstrMax = 255

// checkShortstrs checks the short strings of p that templates or the record
// set. The client refuses a longer one, and it can never be published.
func checkShortstrs(p *publishing) error {
	long := func(what string, n int, fix string) error {
		return fmt.Errorf("%s is %d bytes; AMQP carries it as a short string of at most %d bytes: %s", what, n, shortstrMax, fix)
	}
	if n := len(p.exchange); n > shortstrMax {
		return long("the exchange name", n, "fix the exchange template or the values it takes")
	}
	if n := len(p.key); n > shortstrMax {
		return long("the routing key", n, "fix the routing_key template or the values it takes (or the record's key)")
	}
	if n := len(p.pub.MessageId); n > shortstrMax {
		return long("the message_id", n, "fix the message_id template or the values it takes")
	}
	for name := range p.pub.Headers {
		if n := len(name); n > shortstrMax {
			return long(fmt.Sprintf("header name %.40q...", name), n, "shorten it in headers, or set forward_headers = false when the record carries it")
		}
	}
	return nil
}

// frameOverhead is what an AMQP frame adds to its payload: type, channel
// and size before it, the end marker after it. The broker refuses a frame
// whose payload is over frame_max minus it.
const frameOverhead = 8

// headerFrameSize is the size of the payload of p's content header frame:
// class, weight, body size and property flags, then the properties it
// sets, encoded as amqp091-go writes them (header values are strings,
// written as long strings).
func headerFrameSize(p *publishing) int {
	n := 2 + 2 + 8 + 2
	short := func(s string) {
		if s != "" {
			n += 1 + len(s)
		}
	}
	short(p.pub.ContentType)
	short(p.pub.ContentEncoding)
	if len(p.pub.Headers) > 0 {
		n += 4
		for k, v := range p.pub.Headers {
			n += 1 + len(k) + 1
			if s, ok := v.(string); ok {
				n += 4 + len(s)
			} else {
				n += 16 // not set by this sink; a bound for small values
			}
		}
	}
	if p.pub.DeliveryMode > 0 {
		n++
	}
	if p.pub.Priority > 0 {
		n++
	}
	short(p.pub.CorrelationId)
	short(p.pub.ReplyTo)
	short(p.pub.Expiration)
	short(p.pub.MessageId)
	if !p.pub.Timestamp.IsZero() {
		n += 8
	}
	short(p.pub.Type)
	short(p.pub.UserId)
	short(p.pub.AppId)
	return n
}

// checkHeaderFrame checks that p's properties (mostly its headers) fit in
// one frame of frameMax bytes (the size negotiated with the broker; 0: no
// limit): AMQP 0-9-1 cannot split a content header, the client sends it
// anyway, and the broker closes the connection on it.
func checkHeaderFrame(p *publishing, frameMax int) error {
	if frameMax <= 0 {
		return nil
	}
	if n := headerFrameSize(p); n > frameMax-frameOverhead {
		return fmt.Errorf("the message properties and headers take %d bytes; AMQP carries them in one frame, at most %d bytes on this broker (frame_max %d): the broker would close the connection on it. Shorten the headers (the headers templates, or the record's own headers: set forward_headers = false)", n, frameMax-frameOverhead, frameMax)
	}
	return nil
}

// refusedSize reads the broker's reason for refusing a body over its
// max_message_size (RabbitMQ: "PRECONDITION_FAILED - message size 135266304
// is larger than configured max size 134217728").
var refusedSize = regexp.MustCompile(`message size (\d+) is larger than (?:configured )?max size (\d+)`)

// maxSizeRefused reports a channel closed by the broker because a body was
// over its max_message_size, and that limit.
func maxSizeRefused(err error) (int64, bool) {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		return 0, false
	}
	m := refusedSize.FindStringSubmatch(ae.Reason)
	if m == nil {
		return 0, false
	}
	limit, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil || limit <= 0 {
		return 0, false
	}
	return limit, true
}

// prepare renders the templates of m into p; rendered text goes to buf.
// It fails when a template cannot render m, naming the template.
func (s *Sink) prepare(p *publishing, m *message.Message, buf []byte) ([]byte, error) {
	t := s.tpl
	var err error
	if buf, p.exchange, err = t.exchange.Render(buf, m.Event); err != nil {
		return buf, fmt.Errorf("exchange template: %w", err)
	}
	switch {
	case t.routingKey != nil:
		if buf, p.key, err = t.routingKey.Render(buf, m.Event); err != nil {
			return buf, fmt.Errorf("routing_key template: %w", err)
		}
	case len(m.Key) > 0:
		p.key = string(m.Key)
	}
	p.pub = amqp.Publishing{Body: m.Payload, ContentType: s.cfg.ContentType, Timestamp: m.Time}
	if s.cfg.Persistent {
		p.pub.DeliveryMode = amqp.Persistent
	}
	if t.messageID != nil {
		if buf, p.pub.MessageId, err = t.messageID.Render(buf, m.Event); err != nil {
			return buf, fmt.Errorf("message_id template: %w", err)
		}
	}
	if s.cfg.ForwardHeaders && len(m.Headers) > 0 || len(t.headers) > 0 {
		h := make(amqp.Table, len(m.Headers)+len(t.headers))
		if s.cfg.ForwardHeaders {
			for _, mh := range m.Headers {
				if !t.overrides(mh.Key) {
					h[mh.Key] = string(mh.Value)
				}
			}
		}
		for _, th := range t.headers {
			var v string
			if buf, v, err = th.tpl.Render(buf, m.Event); err != nil {
				return buf, fmt.Errorf("header %q template: %w", th.name, err)
			}
			h[th.name] = v
		}
		p.pub.Headers = h
	}
	return buf, nil
}

// channel returns an idle confirm-mode channel of c, or opens one.
func (s *Sink) channel(c *connection) (*pubChannel, error) {
	s.mu.Lock()
	if n := len(c.idle); n > 0 {
		pc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		s.mu.Unlock()
		return pc, nil
	}
	s.mu.Unlock()
	pc, err := openPubChannel(c.conn)
	if err != nil {
		return nil, component.Retryable(fmt.Errorf("open a confirm-mode channel on %s: %w", s.where, err), 0)
	}
	return pc, nil
}

// release returns pc to c's idle channels.
func (s *Sink) release(c *connection, pc *pubChannel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || c.isDead() || pc.isDead() {
		return
	}
	c.idle = append(c.idle, pc)
}

// Close closes the connection. It is safe without Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	c := s.cur
	s.cur = nil
	s.closed = true
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := c.conn.CloseDeadline(deadline); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close rabbitmq sink: %w", err)
	}
	return nil
}

// pubChannel is a channel in confirm mode used by one Write at a time. Its
// goroutine takes confirms and returns as the connection's reader hands
// them over: a mandatory message that cannot be routed comes back
// (basic.return) before its confirm, so returns are always taken before
// the confirm that follows them.
type pubChannel struct {
	conn     *amqp.Connection
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	returns  chan amqp.Return
	dead     chan struct{}

	mu       sync.Mutex
	batch    *confirmBatch
	closeErr *amqp.Error // why the broker closed the channel; set before dead is closed
}

// confirmBatch is the state of one Write's publishes.
type confirmBatch struct {
	first   uint64 // delivery tag of the first publish
	n       int
	results []result
	pending int
	rets    []amqp.Return
	done    chan struct{}
}

type result struct {
	confirmed bool
	acked     bool
	returned  *amqp.Return
}

func openPubChannel(conn *amqp.Connection) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	pc := &pubChannel{
		conn:     conn,
		ch:       ch,
		confirms: ch.NotifyPublish(make(chan amqp.Confirmation, 256)),
		returns:  ch.NotifyReturn(make(chan amqp.Return, 64)),
		dead:     make(chan struct{}),
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go pc.run(closed)
	return pc, nil
}

func (pc *pubChannel) isDead() bool {
	select {
	case <-pc.dead:
		return true
	default:
		return false
	}
}

func (pc *pubChannel) run(closed chan *amqp.Error) {
	returns := pc.returns
	// takeReturns takes every waiting return: a return precedes its
	// confirm on the wire and was handed over first.
	take := func(r amqp.Return, ok bool) {
		if !ok {
			returns = nil // closed: a nil channel is never ready
			return
		}
		pc.onReturn(r)
	}
	takeReturns := func() {
		for returns != nil {
			select {
			case r, ok := <-returns:
				take(r, ok)
			default:
				return
			}
		}
	}
	for {
		select {
		case r, ok := <-returns:
			take(r, ok)
		case c, ok := <-pc.confirms:
			if !ok {
				// The client closes the close notification (after sending
				// the broker's reason, if any) before the confirms.
				pc.stop(<-closed)
				return
			}
			takeReturns()
			pc.onConfirm(c)
		case e := <-closed:
			// The confirms that came before the close are still to be
			// taken; the client closes the channel of confirms next.
			for c := range pc.confirms {
				takeReturns()
				pc.onConfirm(c)
			}
			pc.stop(e)
			return
		}
	}
}

func (pc *pubChannel) stop(e *amqp.Error) {
	pc.mu.Lock()
	pc.closeErr = e
	pc.mu.Unlock()
	close(pc.dead)
}

// closedError says that the channel closed before the broker confirmed n
// messages, with the broker's reason when it gave one.
func (pc *pubChannel) closedError(n int) error {
	pc.mu.Lock()
	e := pc.closeErr
	pc.mu.Unlock()
	if e == nil {
		return component.Retryable(fmt.Errorf("channel closed before the broker confirmed %d messages", n), 0)
	}
	return component.Retryable(fmt.Errorf("the broker closed the channel before it confirmed %d messages: %w", n, e), 0)
}

func (pc *pubChannel) onReturn(r amqp.Return) {
	pc.mu.Lock()
	if b := pc.batch; b != nil {
		b.rets = append(b.rets, r)
	}
	pc.mu.Unlock()
}

func (pc *pubChannel) onConfirm(c amqp.Confirmation) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	b := pc.batch
	if b == nil || c.DeliveryTag < b.first || c.DeliveryTag >= b.first+uint64(b.n) {
		return
	}
	r := &b.results[c.DeliveryTag-b.first]
	if r.confirmed {
		return
	}
	r.confirmed, r.acked = true, c.Ack
	if b.pending--; b.pending == 0 {
		close(b.done)
	}
}

// publish publishes pubs (but those skipped or done) and waits for their
// confirms. It returns one result per publishing; an error means the
// channel can no longer be trusted, and the results then hold what the
// broker confirmed before the channel closed.
func (pc *pubChannel) publish(ctx context.Context, cfg *Config, pubs []publishing, timeout time.Duration) ([]result, error) {
	n := 0
	for i := range pubs {
		if !pubs[i].skip && !pubs[i].done {
			n++
		}
	}
	results := make([]result, len(pubs))
	if n == 0 {
		return results, nil
	}
	b := &confirmBatch{first: pc.ch.GetNextPublishSeqNo(), n: n, results: make([]result, n), pending: n, done: make(chan struct{})}
	pc.mu.Lock()
	pc.batch = b
	pc.mu.Unlock()
	defer func() {
		pc.mu.Lock()
		pc.batch = nil
		pc.mu.Unlock()
	}()
	// The client checks ctx only before each publish: one blocked in the
	// socket write (a broker that blocked the connection under a memory
	// or disk alarm stops reading it, and keeps sending heartbeats) waits
	// until the broker reads again. Only closing the connection ends it.
	if ctx.Err() != nil {
		return nil, component.Retryable(fmt.Errorf("publishing: %w", context.Cause(ctx)), 0)
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.CloseDeadline(time.Now()) })
	defer stop()
	for i := range pubs {
		p := &pubs[i]
		if p.skip || p.done {
			continue
		}
		if err := pc.ch.PublishWithContext(ctx, p.exchange, p.key, cfg.Mandatory, false, p.pub); err != nil {
			if ctx.Err() != nil {
				return nil, component.Retryable(fmt.Errorf("publish to exchange %q: %w", p.exchange, context.Cause(ctx)), 0)
			}
			if errors.Is(err, amqp.ErrClosed) {
				// The broker may have closed the channel (a body over its
				// max_message_size): wait for its reason.
				select {
				case <-pc.dead:
					return pc.results(b, pubs), pc.closedError(n)
				case <-ctx.Done():
				}
			}
			return nil, amqpconf.Classify(fmt.Errorf("publish to exchange %q: %w", p.exchange, err))
		}
	}
	if !stop() {
		// ctx ended as the last publish returned: the connection is closing.
		return nil, component.Retryable(fmt.Errorf("publishing: %w", context.Cause(ctx)), 0)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-b.done:
	case <-pc.dead:
		return pc.results(b, pubs), pc.closedError(n)
	case <-ctx.Done():
		return nil, component.Retryable(fmt.Errorf("waiting for publisher confirms: %w", ctx.Err()), 0)
	case <-timer.C:
		return nil, component.Retryable(fmt.Errorf("the broker did not confirm %d messages within confirm_timeout (%s)", n, timeout), 0)
	}
	return pc.results(b, pubs), nil
}

// sameHeaders reports whether a returned message's headers are those
// published: a headers exchange routes by them alone, so two messages that
// differ only there may go one to a queue and one nowhere. The sink
// publishes string values only.
func sameHeaders(sent, back amqp.Table) bool {
	if len(sent) != len(back) {
		return false
	}
	for k, v := range sent {
		w, ok := back[k]
		if !ok {
			return false
		}
		vs, ok1 := v.(string)
		ws, ok2 := w.(string)
		if ok1 != ok2 || ok1 && vs != ws {
			return false
		}
	}
	return true
}

// results maps the confirms and returns of b to pubs.
func (pc *pubChannel) results(b *confirmBatch, pubs []publishing) []result {
	results := make([]result, len(pubs))
	pc.mu.Lock()
	rets := b.rets
	j := 0
	for i := range pubs {
		if pubs[i].skip || pubs[i].done {
			continue
		}
		results[i].confirmed = b.results[j].confirmed
		results[i].acked = b.results[j].acked
		j++
	}
	pc.mu.Unlock()
	// Returns come in publish order: match each to the next published
	// message it is a copy of.
	next := 0
	for k := range rets {
		r := &rets[k]
		for i := next; i < len(pubs); i++ {
			p := &pubs[i]
			if p.skip || p.done || results[i].returned != nil {
				continue
			}
			if p.exchange == r.Exchange && p.key == r.RoutingKey && p.pub.MessageId == r.MessageId &&
				bytes.Equal(p.pub.Body, r.Body) && sameHeaders(p.pub.Headers, r.Headers) {
				results[i].returned = r
				next = i + 1
				break
			}
		}
	}
	return results
}
