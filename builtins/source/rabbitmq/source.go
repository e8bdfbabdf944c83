package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/amqpconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// ErrClosed is returned by Read once Close was called.
var ErrClosed = errors.New("rabbitmq source closed")

// maxBatch caps the messages of one batch: past it the engine can work on
// the first while the rest arrive.
const maxBatch = 500

// Register adds the rabbitmq source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "rabbitmq",
		Summary: "Consume a RabbitMQ queue with a prefetch limit; each message becomes a CloudEvent, acknowledged after delivery.",
		Description: "Consumes `queue` (declared durable when missing, unless `declare = false`, and bound to the exchanges of " +
			"`bindings`) with at most `prefetch` messages unacknowledged, and emits one CloudEvent per message with " +
			"`data.exchange`, `data.routing_key`, `data.redelivered`, the message properties, `data.headers` and `data.body`. " +
			"A message is acknowledged only once it and every message delivered before it were delivered, filtered or " +
			"dead-lettered; a stop, a crash or a lost connection leaves the rest to the broker, which delivers them again " +
			"(at-least-once: up to `prefetch` duplicates per process). Several processes on one queue share its messages. " +
			"See docs/connectors/rabbitmq.md.",
		Example: `[source]
type = "rabbitmq"
url = "amqp://guest:guest@127.0.0.1:5672/"
queue = "orders"
prefetch = 500
bindings = [{ exchange = "orders", routing_key = "eu.#" }]
`,
		New:   newConfig,
		Build: build,
	})
}

// Source is the rabbitmq source. Besides component.Source it implements
// component.Rewinder: the unacknowledged messages go back to the queue and
// are delivered again.
type Source struct {
	cfg      *Config
	log      zerolog.Logger
	conn     amqpconf.Conn
	where    string // the URL without its password
	tag      string
	enc      *encoder
	maxEvent int
	m        sourceMetrics

	mu     sync.Mutex
	sess   *session
	gen    uint64
	closed bool
	done   chan struct{} // closed by Close: unblocks Read
	// undecodable counts the sessions in a row that ended because the
	// client could not decode a frame, with no ack sent in between.
	undecodable int
}

// session is one connection with its consuming channel. Acknowledgements
// go to the session that delivered the messages: delivery tags mean
// nothing on another channel, and a closed session's messages were
// returned to the queue by the broker already.
type session struct {
	conn       *amqp.Connection
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	idPrefix   []byte        // `<queue>-<session>-`: the id of a message without message_id
	dead       chan struct{} // closed once the connection, the channel or the consumer ended
	reason     error         // why, set before dead is closed
	once       sync.Once
}

func (ss *session) end(reason error) {
	ss.once.Do(func() {
		ss.reason = reason
		close(ss.dead)
	})
}

func (ss *session) isDead() bool {
	select {
	case <-ss.dead:
		return true
	default:
		return false
	}
}

type sourceMetrics struct {
	messages   metrics.Counter
	nonJSON    metrics.Counter
	reconnects metrics.Counter
	unacked    metrics.Gauge
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	s := &Source{
		cfg: cfg,
		log: env.Logger,
		conn: amqpconf.Conn{URL: cfg.URL, TLS: cfg.TLS, Heartbeat: cfg.Heartbeat.D(), DialTimeout: cfg.DialTimeout.D(),
			Name: "sluice " + env.Task + " source", Dir: env.Dir},
		where:    amqpconf.Redact(cfg.URL),
		tag:      cfg.ConsumerTag,
		maxEvent: env.MaxEvent,
		done:     make(chan struct{}),
	}
	if s.tag == "" {
		s.tag = "sluice-" + env.Task + "-" + randomHex(4)
	}
	s.enc = newEncoder(amqpconf.Source(cfg.URL, cfg.Queue), cfg.Queue, cfg.BodyFormat)
	s.m = newMetrics(env)
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newMetrics(env component.Env) sourceMetrics {
	lbl := env.Task
	ms := env.Metrics
	return sourceMetrics{
		messages:   ms.Counter("rabbitmq_consumer_messages_total", "Messages delivered by RabbitMQ.", "task").WithLabelValues(lbl),
		nonJSON:    ms.Counter("rabbitmq_body_not_json_total", "Message bodies that body_format = \"json\" could not parse and kept as a string.", "task").WithLabelValues(lbl),
		reconnects: ms.Counter("rabbitmq_consumer_reconnects_total", "Connections reopened after the last one was lost.", "task").WithLabelValues(lbl),
		unacked:    ms.Gauge("rabbitmq_consumer_unacked_messages", "Messages delivered and not acknowledged yet: what a crash delivers again.", "task").WithLabelValues(lbl),
	}
}

// Open connects, checks (or declares) the queue and its bindings and starts
// consuming. Bad credentials, a missing queue with declare = false or a
// refused permission fail the task; an unreachable broker is retried.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.sess != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	ss, err := s.connect()
	if err != nil {
		return fmt.Errorf("open rabbitmq source: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ss.conn.Close()
		return nil
	}
	s.sess = ss
	s.log.Info().Str("url", s.where).Str("queue", s.cfg.Queue).Int("prefetch", s.cfg.Prefetch).Str("consumer_tag", s.tag).Msg("rabbitmq source consuming")
	return nil
}

// connect opens a connection and a channel, checks the topology and starts
// the consumer.
func (s *Source) connect() (*session, error) {
	conn, err := s.conn.Dial()
	if err != nil {
		return nil, err
	}
	ss, err := s.consume(conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ss, nil
}

func (s *Source) consume(conn *amqp.Connection) (*session, error) {
	cfg := s.cfg
	ch, err := conn.Channel()
	if err != nil {
		return nil, component.Retryable(fmt.Errorf("open a channel on %s: %w", s.where, err), 0)
	}
	if ch, err = amqpconf.EnsureQueue(conn, ch, cfg.Queue, cfg.QueueType, cfg.Declare, s.log, s.where); err != nil {
		return nil, err
	}
	for _, b := range cfg.Bindings {
		if ch, err = amqpconf.EnsureExchange(conn, ch, b.Exchange, cfg.ExchangeType, cfg.Declare, s.log, s.where); err != nil {
			return nil, err
		}
		if err := ch.QueueBind(cfg.Queue, b.RoutingKey, b.Exchange, false, nil); err != nil {
			return nil, amqpconf.Classify(fmt.Errorf("bind queue %q to exchange %q with key %q on %s: %w", cfg.Queue, b.Exchange, b.RoutingKey, s.where, err))
		}
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, amqpconf.Classify(fmt.Errorf("set prefetch %d on %s: %w", cfg.Prefetch, s.where, err))
	}
	ss := &session{conn: conn, ch: ch, dead: make(chan struct{})}
	// Watch before consuming, so that no end goes unnoticed.
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	canceled := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(cfg.Queue, s.tag, false, cfg.Exclusive, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if cfg.Exclusive && errors.As(err, &ae) && ae.Code == amqp.AccessRefused && strings.Contains(ae.Reason, "exclusive") {
			// Another process holds the queue: stand by until it lets go.
			return nil, component.Retryable(fmt.Errorf("queue %q on %s is consumed exclusively by another consumer; retrying until it stops: %w", cfg.Queue, s.where, err), 0)
		}
		return nil, amqpconf.Classify(fmt.Errorf("consume queue %q on %s: %w", cfg.Queue, s.where, err))
	}
	ss.deliveries = deliveries
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	ss.idPrefix = fmt.Appendf(nil, "%s-%s%d-", cfg.Queue, randomHex(3), gen)
	go func() {
		select {
		case e := <-connClosed:
			ss.end(closeReason("connection closed", e, chClosed))
		case e := <-chClosed:
			ss.end(closeReason("channel closed", e, connClosed))
		case tag, ok := <-canceled:
			if ok {
				ss.end(fmt.Errorf("the broker canceled consumer %q (queue %q deleted?)", tag, cfg.Queue))
				return
			}
			// The library closes the cancel notifications when the
			// channel shuts down, after sending why to the close ones.
			select {
			case e := <-connClosed:
				ss.end(closeReason("connection closed", e, chClosed))
			case e := <-chClosed:
				ss.end(closeReason("channel closed", e, connClosed))
			case <-ss.dead:
			}
		case <-ss.dead:
		}
	}()
	return ss, nil
}

// closeReason is the error of a closed connection or channel. A channel
// closed along with its connection may report no error: the connection's
// notification, sent first, then has it.
func closeReason(what string, e *amqp.Error, other <-chan *amqp.Error) error {
	if e == nil {
		select {
		case e = <-other:
		default:
		}
	}
	if e == nil {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %w", what, e)
}

// current returns the open session, reconnecting when there is none.
func (s *Source) current() (*session, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	ss := s.sess
	s.mu.Unlock()
	if ss != nil {
		return ss, nil
	}
	ss, err := s.connect()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq source: reconnect: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ss.conn.Close()
		return nil, ErrClosed
	}
	s.sess = ss
	s.m.reconnects.Inc()
	s.log.Info().Str("url", s.where).Str("queue", s.cfg.Queue).Msg("rabbitmq source reconnected; messages not acknowledged before are delivered again")
	return ss, nil
}

// maxUndecodable is how many connections in a row the AMQP client may
// close because it could not decode what the broker delivered, with no
// message acknowledged in between, before the source stops the task: the
// broker delivers the same message again on each new connection, so
// reconnecting further would only repeat the failure.
const maxUndecodable = 3

// errRewound ends a session that Rewind closed on purpose.
var errRewound = errors.New("rewound")

// undecodable reports a connection the client closed because it could not
// parse a frame the broker sent (amqp091-go's reader turns a frame or field
// it cannot decode, such as a header table nested deeper than 32 levels,
// into a 501 FRAME_ERROR whose reason is the parse error). A 501 from a
// lost socket (EOF, reset) or one the broker sent is not one.
func undecodable(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Server || ae.Code != amqp.FrameError {
		return false
	}
	for _, parse := range []*amqp.Error{amqp.ErrSyntax, amqp.ErrFrame, amqp.ErrFrameTooLarge} {
		if strings.Contains(ae.Reason, parse.Reason) {
			return true
		}
	}
	return false
}

// lost handles the end of ss while Read consumed it: it waits for the
// watcher to record why the session ended, forgets the session and returns
// the error Read returns. A lost connection is retryable: the engine
// retries Read after a growing wait (its backoff, reset once a read
// returns messages), and that Read reconnects, so connections are never
// reopened in a loop. The same message failing to decode maxUndecodable
// times in a row stops the task instead. It returns nil when ss was closed
// on purpose (Rewind) and Read should go on with a new session.
func (s *Source) lost(ctx context.Context, ss *session) error {
	if !ss.isDead() {
		// The delivery stream closes only after the library signalled the
		// end of the channel or connection to the watcher, which sets
		// the reason; the timer only guards against a library change.
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ss.dead:
		case <-t.C:
		case <-ctx.Done():
		case <-s.done:
		}
		t.Stop()
		ss.end(errors.New("delivery stream ended"))
	}
	reason := ss.reason
	s.mu.Lock()
	if s.sess == ss {
		s.sess = nil
	}
	closed := s.closed
	fails := 0
	if undecodable(reason) {
		s.undecodable++
		fails = s.undecodable
		if fails >= maxUndecodable {
			s.undecodable = 0 // a resumed task tries again
		}
	} else if reason != nil && !errors.Is(reason, errRewound) {
		s.undecodable = 0
	}
	s.mu.Unlock()
	go func() { _ = ss.conn.Close() }()
	switch {
	case closed:
		return ErrClosed
	case errors.Is(reason, errRewound):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	if reason == nil {
		reason = errors.New("session ended")
	}
	q := s.cfg.Queue
	if fails >= maxUndecodable {
		err := fmt.Errorf("rabbitmq source: queue %q on %s: the AMQP client could not decode a message the broker delivered and closed the connection %d times in a row, with no message acknowledged in between (%w). "+
			"amqp091-go cannot read that message (for example its headers hold tables nested deeper than 32 levels); it is usually the one at the head of the queue, and it stays in the queue: nothing is lost. "+
			"Remove or dead-letter it on the broker, then resume the task: `rabbitmqadmin get queue=%s ackmode=reject_requeue_false` (or the management UI's Get messages with ack mode \"Reject requeue false\") takes the head message off, "+
			"dead-lettering it when the queue has a dead-letter exchange (look at it first with ackmode=ack_requeue_true); "+
			"a quorum queue with a dead-letter exchange and x-delivery-limit dead-letters such a message by itself (see docs/connectors/rabbitmq.md)",
			q, s.where, fails, reason, q)
		s.log.Error().Err(err).Str("url", s.where).Str("queue", q).Msg("rabbitmq source stopped: a message in the queue cannot be decoded")
		return component.TaskPermanent(err)
	}
	if fails > 0 {
		s.log.Warn().Err(reason).Str("url", s.where).Str("queue", q).Int("attempt", fails).Int("max_attempts", maxUndecodable).
			Msg("rabbitmq connection closed by the AMQP client: it could not decode what the broker delivered (a message it cannot read?); reconnecting after a wait, the broker delivers the message again; the task stops if this repeats with nothing acknowledged")
	} else {
		s.log.Warn().Err(reason).Str("url", s.where).Str("queue", q).Msg("rabbitmq connection lost; reconnecting")
	}
	return component.Retryable(fmt.Errorf("rabbitmq source: consuming queue %q on %s: %w", q, s.where, reason), 0)
}

// Read returns the messages delivered so far, up to maxBatch, waiting for
// the first. It opens at most one connection per call: after a lost
// connection it returns a retryable error with the reason, and the next
// call reconnects (the engine waits before it, longer each time).
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		ss, err := s.current()
		if err != nil {
			return component.Batch{}, err
		}
		select {
		case d, ok := <-ss.deliveries:
			if !ok {
				if err := s.lost(ctx, ss); err != nil {
					return component.Batch{}, err
				}
				continue
			}
			ds := make([]amqp.Delivery, 1, 16)
			ds[0] = d
		more:
			for len(ds) < maxBatch {
				select {
				case d, ok := <-ss.deliveries:
					if !ok {
						break more
					}
					ds = append(ds, d)
				default:
					break more
				}
			}
			if ss.isDead() {
				// Their acks could not reach the broker, which delivers
				// them again on the next session.
				if err := s.lost(ctx, ss); err != nil {
					return component.Batch{}, err
				}
				continue
			}
			return s.batch(ss, ds), nil
		case <-ss.dead:
			if err := s.lost(ctx, ss); err != nil {
				return component.Batch{}, err
			}
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		case <-s.done:
			return component.Batch{}, ErrClosed
		}
	}
}

// batch wraps deliveries in events, with one buffer for all payloads.
func (s *Source) batch(ss *session, ds []amqp.Delivery) component.Batch {
	size, nh := 0, 0
	for i := range ds {
		size += s.enc.sizeHint(&ds[i])
		nh += len(ds[i].Headers)
	}
	buf := make([]byte, 0, size)
	var hdrs []message.Header
	var hbuf []byte
	if nh > 0 {
		hdrs = make([]message.Header, 0, nh)
	}
	msgs := make([]message.Message, len(ds))
	now := time.Now()
	nonJSON := 0
	var key []byte // consecutive messages usually share a routing key
	for i := range ds {
		d := &ds[i]
		start := len(buf)
		var bad bool
		buf, bad = s.enc.appendEvent(buf, d, ss.idPrefix, now)
		if bad {
			nonJSON++
		}
		m := &msgs[i]
		m.Payload = buf[start:len(buf):len(buf)]
		m.Event = m.Payload
		if d.RoutingKey != "" {
			if string(key) != d.RoutingKey {
				key = []byte(d.RoutingKey)
			}
			m.Key = key[:len(key):len(key)]
		}
		m.Time = d.Timestamp
		if m.Time.IsZero() {
			m.Time = now
		}
		m.Pos = message.Position{Stream: s.cfg.Queue, Offset: int64(d.DeliveryTag)}
		if len(d.Headers) > 0 {
			hs := len(hdrs)
			hdrs, hbuf = headers(d.Headers, hdrs, hbuf)
			m.Headers = hdrs[hs:len(hdrs):len(hdrs)]
		}
		if s.maxEvent > 0 && len(m.Payload) > s.maxEvent {
			m.Err = fmt.Errorf("event of %d bytes from queue %q (delivery %d) exceeds the %d-byte event limit (max_event_size)", len(m.Payload), s.cfg.Queue, d.DeliveryTag, s.maxEvent)
			m.Payload, m.Event = d.Body, d.Body
		}
	}
	s.m.messages.Add(uint64(len(ds)))
	s.m.unacked.Add(float64(len(ds)))
	if nonJSON > 0 {
		s.m.nonJSON.Add(uint64(nonJSON))
	}
	last := ds[len(ds)-1].DeliveryTag
	n := len(ds)
	return component.Batch{
		Messages: msgs,
		Lane:     s.cfg.Queue,
		Ack:      func(err error) { s.ack(ss, last, n, err) },
	}
}

// ack acknowledges, with one `multiple` ack, every message of ss up to
// tag. The engine acks a lane's batches in read order, and this source has
// one lane, so everything up to tag was handled. A nack leaves the
// messages unacknowledged: the engine nacks only when the task stops or
// blocks, and the broker delivers them again once the connection closes.
func (s *Source) ack(ss *session, tag uint64, n int, err error) {
	s.m.unacked.Add(-float64(n))
	if err != nil || ss.isDead() {
		return
	}
	if aerr := ss.ch.Ack(tag, true); aerr != nil {
		// The channel is gone: the broker delivers the messages again.
		s.log.Debug().Err(aerr).Uint64("delivery_tag", tag).Msg("ack not sent; the messages will be delivered again")
		return
	}
	// The queue moved on: a message that failed to decode before is no
	// longer the same one in a row.
	s.mu.Lock()
	s.undecodable = 0
	s.mu.Unlock()
}

// Rewind returns every unacknowledged message to the queue by closing the
// session; the next Read reconnects and the broker delivers them again.
func (s *Source) Rewind(ctx context.Context) error {
	s.mu.Lock()
	ss := s.sess
	s.sess = nil
	s.mu.Unlock()
	if ss != nil {
		ss.end(errRewound)
		_ = ss.conn.Close()
	}
	return nil
}

// Close ends the consumer and the connection; the broker returns what was
// not acknowledged to the queue. Acks already sent stand: they were
// written to the connection before it closed. It unblocks a pending Read
// and is safe without Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	ss := s.sess
	s.sess = nil
	s.mu.Unlock()
	if ss == nil {
		return nil
	}
	ss.end(nil)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := ss.conn.CloseDeadline(deadline); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close rabbitmq source: %w", err)
	}
	return nil
}
