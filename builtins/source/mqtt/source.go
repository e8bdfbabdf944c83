package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/builtins/internal/mqttconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// ErrClosed is returned by Read once Close was called.
var ErrClosed = errors.New("mqtt source closed")

const (
	// maxBatch caps the messages of one batch.
	maxBatch = 500
	// maxQoS0 caps the QoS 0 messages waiting for Read: the broker does not
	// wait for acknowledgements of those, and the client must not block
	// (it would miss its keep-alives), so past this they are dropped.
	maxQoS0 = 10000
)

// maxQoS0Bytes caps the payload bytes of the QoS 0 messages waiting for
// Read, as maxQoS0 caps their number: 10,000 messages of a broker's
// largest size would be gigabytes. A var so that a test can lower it.
var maxQoS0Bytes = 64 << 20

// EventType is the CloudEvents `type` of every event this source emits.
const EventType = "sluice.mqtt.message"

// Register adds the mqtt source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "mqtt",
		Summary: "Subscribe to MQTT topics (3.1.1) in a persistent session; each message becomes a CloudEvent, acknowledged after delivery.",
		Description: "Subscribes to `topics` (wildcards and `$share/<group>/...` shared subscriptions) with `qos` in a persistent " +
			"session named by `client_id`, and emits one CloudEvent per message with `data.topic`, `data.qos`, `data.retained`, " +
			"`data.duplicate` and `data.payload`. QoS 1 and 2 messages are acknowledged only once they and every message " +
			"received before them were delivered, filtered or dead-lettered, in arrival order; what a stop, a crash or a lost " +
			"connection leaves unacknowledged the broker sends again, and messages published while Sluice is away wait in the " +
			"session (within the broker's queue limits). See docs/connectors/mqtt.md.",
		Example: `[source]
type = "mqtt"
url = "tcp://127.0.0.1:1883"
topics = ["sensors/+/temperature"]
qos = 1
client_id = "sluice-sensors"
`,
		New:   newConfig,
		Build: build,
	})
}

// Source is the mqtt source. Besides component.Source it implements
// component.Rewinder: the session is reopened and the broker sends the
// unacknowledged messages again.
type Source struct {
	cfg      *Config
	log      zerolog.Logger
	conn     mqttconf.Conn
	where    string
	filters  map[string]byte
	enc      *encoder
	maxEvent int
	m        sourceMetrics

	mu     sync.Mutex
	sess   *session
	opened bool // subscribed once: later connects resubscribe only when the broker lost the session
	closed bool
	done   chan struct{}
	gen    uint64
	// carry holds the QoS 1 and 2 messages a lost session had received
	// and not handed out: the broker sends them again if it kept the
	// session, and they are dropped then; if it lost it (a restart
	// without persistence), nobody sends them again, and the next
	// session hands them out first.
	carry []paho.Message
	// backoff is the wait before the next reconnect: it grows while
	// connections are lost soon after they were made (another client with
	// the same id takes the session over at each connect), and is zero
	// after a connection that lasted.
	backoff time.Duration
}

// Reconnect backoff: a connection lost within quickLoss of its connect
// doubles the wait before the next one, from minBackoff to maxBackoff.
// Without it two processes with one client id took the session from each
// other hundreds of times a second, each logging every loss.
const (
	quickLoss  = 10 * time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

type sourceMetrics struct {
	messages   metrics.Counter
	nonJSON    metrics.Counter
	dropped    metrics.Counter
	reconnects metrics.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	id := cfg.ClientID
	if id == "" {
		id = "sluice-" + env.Task
	}
	s := &Source{
		cfg: cfg,
		log: env.Logger,
		conn: mqttconf.Conn{URL: cfg.URL, Username: cfg.Username, Password: cfg.Password, TLS: cfg.TLS, ClientID: id,
			CleanSession: cfg.CleanSession, KeepAlive: cfg.KeepAlive.D(), ConnectTimeout: cfg.ConnectTimeout.D(), Dir: env.Dir},
		where:    mqttconf.Redact(cfg.URL),
		filters:  map[string]byte{},
		maxEvent: env.MaxEvent,
		done:     make(chan struct{}),
	}
	for _, f := range cfg.Topics {
		s.filters[f] = byte(cfg.QoS)
	}
	if _, err := s.conn.Options(); err != nil {
		return nil, err // a TLS file that does not load
	}
	s.enc = newEncoder(s.where, cfg.PayloadFormat)
	lbl := env.Task
	ms := env.Metrics
	s.m = sourceMetrics{
		messages:   ms.Counter("mqtt_consumer_messages_total", "Messages received from the MQTT broker.", "task").WithLabelValues(lbl),
		nonJSON:    ms.Counter("mqtt_payload_not_json_total", "Payloads that payload_format = \"json\" could not parse and kept as a string.", "task").WithLabelValues(lbl),
		dropped:    ms.Counter("mqtt_qos0_dropped_total", "QoS 0 messages dropped because the task fell behind.", "task").WithLabelValues(lbl),
		reconnects: ms.Counter("mqtt_consumer_reconnects_total", "Connections reopened after the last one was lost.", "task").WithLabelValues(lbl),
	}
	return s, nil
}

// session is one connection of the client. Acknowledgements go to the
// session that received the messages: after a reconnect the broker sends
// the unacknowledged ones again, under packet ids of the new session.
type session struct {
	client   paho.Client
	since    time.Time // connected
	qos      int
	idPrefix []byte // `<client id>-<session>-`
	seq      int64  // messages handed out, numbering event ids; Read only

	mu      sync.Mutex
	queue   []paho.Message
	queued  int // payload bytes in queue
	handed  int // QoS 1 and 2 messages handed out and not acknowledged
	wake    chan struct{}
	dead    chan struct{}
	reason  error
	once    sync.Once
	dropped func()
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

// onMessage is paho's handler: it runs on the client's router goroutine and
// must not block.
func (ss *session) onMessage(_ paho.Client, m paho.Message) {
	ss.mu.Lock()
	size := len(m.Payload())
	if m.Qos() == 0 && (len(ss.queue) >= maxQoS0 || ss.queued+size > maxQoS0Bytes && len(ss.queue) > 0) {
		ss.mu.Unlock()
		ss.dropped()
		return
	}
	ss.queue = append(ss.queue, m)
	ss.queued += size
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// Open connects and subscribes. Refused credentials or a refused
// subscription fail the task; an unreachable broker is retried.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.sess != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	ss, err := s.connect(ctx)
	if err != nil {
		return fmt.Errorf("open mqtt source: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ss.client.Disconnect(0)
		return nil
	}
	s.sess = ss
	s.log.Info().Str("url", s.where).Strs("topics", s.cfg.Topics).Int("qos", s.cfg.QoS).Str("client_id", s.conn.ClientID).
		Bool("clean_session", s.cfg.CleanSession).Msg("mqtt source subscribed")
	return nil
}

// connect opens a session: connect, then subscribe unless the broker kept
// the session's subscriptions (resubscribing would make it send the
// retained messages again).
func (s *Source) connect(ctx context.Context) (*session, error) {
	opts, err := s.conn.Options()
	if err != nil {
		return nil, component.TaskPermanent(err)
	}
	ss := &session{qos: s.cfg.QoS, wake: make(chan struct{}, 1), dead: make(chan struct{}),
		dropped: func() { s.m.dropped.Inc() }}
	s.mu.Lock()
	s.gen++
	ss.idPrefix = fmt.Appendf(nil, "%s-%s%d-", s.conn.ClientID, randomHex(3), s.gen)
	first := !s.opened
	s.mu.Unlock()
	opts.SetDefaultPublishHandler(ss.onMessage)
	opts.SetAutoAckDisabled(true)
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) { ss.end(err) })
	client := paho.NewClient(opts)
	ss.client = client
	present, err := s.conn.Connect(ctx, client)
	if err != nil {
		return nil, err
	}
	ss.since = time.Now()
	s.mu.Lock()
	carry := s.carry
	s.carry = nil
	s.mu.Unlock()
	if !present && len(carry) > 0 {
		// Before any message of this session: the broker sends none
		// before the subscription below.
		ss.mu.Lock()
		for _, m := range carry {
			ss.queue = append(ss.queue, carried{m})
			ss.queued += len(m.Payload())
		}
		ss.mu.Unlock()
		s.log.Warn().Int("messages", len(carry)).Str("client_id", s.conn.ClientID).
			Msg("the MQTT broker lost the session (restarted without persistence?): the messages received before the connection was lost are handed to the task, what the broker held for the session is lost")
	}
	if first || !present || s.cfg.CleanSession {
		// A failed subscription throws this session away: the carried
		// messages wait for the next one again, which the broker will
		// not send either.
		giveBack := func() {
			if !present && len(carry) > 0 {
				s.mu.Lock()
				s.carry = append(carry, s.carry...)
				s.mu.Unlock()
			}
		}
		tok := client.SubscribeMultiple(s.filters, nil)
		if err := mqttconf.Wait(ctx, tok); err != nil {
			client.Disconnect(0)
			giveBack()
			return nil, component.Retryable(fmt.Errorf("subscribe to %v on %s: %w", s.cfg.Topics, s.where, err), 0)
		}
		for f, q := range tok.(*paho.SubscribeToken).Result() {
			if q == 0x80 {
				client.Disconnect(0)
				giveBack()
				return nil, component.TaskPermanent(fmt.Errorf("MQTT broker %s refused the subscription to %q: check the filter and the broker's ACL for client %q", s.where, f, s.conn.ClientID))
			}
			if int(q) < s.cfg.QoS {
				// The broker's max_qos (or its ACL) downgraded it: its
				// messages come at most once, whatever the task says.
				s.log.Warn().Str("topic", f).Int("qos", s.cfg.QoS).Int("granted_qos", int(q)).Str("url", s.where).
					Msg("the MQTT broker granted a lower QoS than asked for this subscription: its messages are delivered at most once by the broker, and lost if Sluice stops before delivering them (raise the broker's max_qos)")
			}
		}
	}
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	return ss, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// current returns the open session, reconnecting when there is none.
func (s *Source) current(ctx context.Context) (*session, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	ss := s.sess
	wait := s.backoff
	s.mu.Unlock()
	if ss != nil {
		return ss, nil
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.done:
			t.Stop()
			return nil, ErrClosed
		}
	}
	ss, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("mqtt source: reconnect: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ss.client.Disconnect(0)
		return nil, ErrClosed
	}
	s.sess = ss
	s.m.reconnects.Inc()
	s.log.Info().Str("url", s.where).Str("client_id", s.conn.ClientID).Msg("mqtt source reconnected; the broker sends again what was not acknowledged")
	return ss, nil
}

// drop forgets ss and disconnects it.
func (s *Source) drop(ss *session) {
	lasted := time.Since(ss.since)
	s.mu.Lock()
	if s.sess == ss {
		s.sess = nil
	}
	rewound := errors.Is(ss.reason, errRewound)
	switch {
	case rewound:
		// Not a lost connection: reconnect at once, without a warning.
	case lasted < quickLoss:
		s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
	default:
		s.backoff = 0
	}
	wait := s.backoff
	closed := s.closed
	s.mu.Unlock()
	if !closed && !rewound {
		ev := s.log.Warn().Err(ss.reason).Str("url", s.where)
		if wait > 0 {
			ev = ev.Dur("lasted", lasted.Round(time.Millisecond)).Dur("retry_in", wait).
				Str("hint", fmt.Sprintf("is another client connected with client id %q? Two clients with one id disconnect each other", s.conn.ClientID))
		}
		ev.Msg("mqtt connection lost; reconnecting")
	}
	go ss.client.Disconnect(0)
}

// Read returns the messages received so far, up to maxBatch, waiting for
// the first. After a lost connection it reconnects; an error it returns is
// retried by the engine.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		ss, err := s.current(ctx)
		if err != nil {
			return component.Batch{}, err
		}
		dead := ss.isDead()
		ss.mu.Lock()
		n := min(len(ss.queue), maxBatch)
		if ss.qos > 0 && !dead {
			// Past max_unacked, wait for acknowledgements: what is handed
			// out and not acknowledged is what a crash delivers twice.
			n = min(n, s.cfg.MaxUnacked-ss.handed)
		}
		var ms []paho.Message
		if n > 0 {
			ms = make([]paho.Message, n)
			copy(ms, ss.queue)
			for _, m := range ms {
				ss.queued -= len(m.Payload())
			}
			clear(ss.queue[:n])
			ss.queue = ss.queue[n:]
			if len(ss.queue) == 0 {
				ss.queue = nil
			}
			if ss.qos > 0 {
				ss.handed += n
			}
		}
		ss.mu.Unlock()
		if ss.isDead() {
			// The session's acknowledgements cannot reach the broker any
			// more. What it sends again to the next session (QoS 1 and 2
			// of a persistent session) waits for that one; the rest would
			// be lost, so it is handed out: QoS 0 messages, which nobody
			// sends twice, and every message of a clean session, of which
			// the broker keeps nothing. (They were all thrown away, QoS 0
			// readings lost at every blip of the broker's connection.)
			// The session stays current until its queue is empty.
			if ms = s.notResent(ms); len(ms) > 0 {
				return s.batch(ss, ms), nil
			}
			if n == 0 {
				s.drop(ss)
			}
			continue
		}
		if n > 0 {
			return s.batch(ss, ms), nil
		}
		select {
		case <-ss.wake:
		case <-ss.dead: // what it received is handed out above, then it goes
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		case <-s.done:
			return component.Batch{}, ErrClosed
		}
	}
}

// notResent keeps, in place, the messages of ms that the broker will not
// send again to the next session. The others wait in carry until the next
// connect tells whether the broker kept the session.
func (s *Source) notResent(ms []paho.Message) []paho.Message {
	if s.cfg.CleanSession {
		return ms
	}
	return slices.DeleteFunc(ms, func(m paho.Message) bool {
		if _, ok := m.(carried); ok || m.Qos() == 0 {
			return false
		}
		s.mu.Lock()
		s.carry = append(s.carry, m)
		s.mu.Unlock()
		return true
	})
}

// carried is a message a lost session received, handed out by the next
// one because the broker lost the session: nobody sends it again, and its
// acknowledgement has no connection to go to.
type carried struct{ paho.Message }

func (carried) Ack() {}

// batch wraps messages in events, with one buffer for all payloads.
func (s *Source) batch(ss *session, ms []paho.Message) component.Batch {
	size := 0
	for _, m := range ms {
		size += s.enc.sizeHint(m)
	}
	buf := make([]byte, 0, size)
	msgs := make([]message.Message, len(ms))
	now := time.Now()
	nonJSON := 0
	var key []byte // consecutive messages usually share a topic
	for i, pm := range ms {
		ss.seq++
		start := len(buf)
		var bad bool
		buf, bad = s.enc.appendEvent(buf, pm, ss.idPrefix, ss.seq, now)
		if bad {
			nonJSON++
		}
		m := &msgs[i]
		m.Payload = buf[start:len(buf):len(buf)]
		m.Event = m.Payload
		if string(key) != pm.Topic() {
			key = []byte(pm.Topic())
		}
		m.Key = key[:len(key):len(key)]
		m.Time = now
		m.Pos = message.Position{Stream: pm.Topic(), Offset: ss.seq}
		if s.maxEvent > 0 && len(m.Payload) > s.maxEvent {
			m.Err = fmt.Errorf("event of %d bytes from topic %q exceeds the %d-byte event limit (max_event_size)", len(m.Payload), pm.Topic(), s.maxEvent)
			m.Payload, m.Event = pm.Payload(), pm.Payload()
		}
	}
	s.m.messages.Add(uint64(len(ms)))
	if nonJSON > 0 {
		s.m.nonJSON.Add(uint64(nonJSON))
	}
	b := component.Batch{Messages: msgs, Lane: s.conn.ClientID}
	if ss.qos > 0 {
		b.Ack = func(err error) { s.ack(ss, ms, err) }
	}
	return b
}

// ack acknowledges the messages of a batch. The engine acks a lane's
// batches in read order, one at a time, and this source has one lane, so
// acknowledgements leave in the order the messages arrived, as MQTT
// requires. paho hands each to its writer at once (it blocks only while
// the connection is being torn down). A nack sends nothing: the engine
// nacks only when the task stops or blocks, and the broker sends the
// messages again on the next connection.
func (s *Source) ack(ss *session, ms []paho.Message, err error) {
	ss.mu.Lock()
	ss.handed -= len(ms)
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}: // Read may wait for room under max_unacked
	default:
	}
	if err != nil {
		return
	}
	for _, m := range ms {
		if ss.isDead() {
			return // the broker sends them again to the next session
		}
		m.Ack()
	}
}

// errRewound ends a session that Rewind closed.
var errRewound = errors.New("rewound")

// Rewind reopens the session: the broker sends every unacknowledged
// message again. The closed session stays current until Read has handed
// out what it received that the broker will not send again (QoS 0
// messages, every message of a clean session), as after a lost
// connection; those were thrown away with it before.
func (s *Source) Rewind(ctx context.Context) error {
	s.mu.Lock()
	ss := s.sess
	s.mu.Unlock()
	if ss != nil {
		ss.end(errRewound)
		ss.client.Disconnect(250)
	}
	return nil
}

// Close makes sure the broker has the acknowledgements sent so far, then
// disconnects; the persistent session keeps what was not acknowledged for
// the next connection. It unblocks a pending Read and is safe without Open.
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
	if !ss.isDead() {
		// A round trip after the acknowledgements: the broker answers in
		// order, so once it answered it has them. Closing right after
		// writing them can lose them (a reset discards what the broker
		// had not read yet), and they would be sent again.
		_ = mqttconf.Wait(ctx, ss.client.Unsubscribe("$sluice/flush/"+s.conn.ClientID))
	}
	ss.end(nil)
	ss.client.Disconnect(1000)
	return nil
}

// encoder builds events with appends only; Read calls it, one at a time.
type encoder struct {
	format string
	source []byte // `","source":"mqtt://host:port","type":...`
	clock  eventenc.Clock
}

func newEncoder(where, format string) *encoder {
	e := &encoder{format: format}
	e.source = append(e.source, `","source":"`...)
	e.source = eventenc.AppendText(e.source, []byte(where))
	e.source = append(e.source, `","type":"`+EventType+`","datacontenttype":"`+eventenc.DataContentType+`"`...)
	return e
}

func (e *encoder) sizeHint(m paho.Message) int {
	return 200 + len(e.source) + 2*len(m.Topic()) + eventenc.BodySize(m.Payload(), e.format)
}

// appendEvent appends the CloudEvent of m; its id is idPrefix and seq.
func (e *encoder) appendEvent(dst []byte, m paho.Message, idPrefix []byte, seq int64, now time.Time) (out []byte, nonJSON bool) {
	dst = append(dst, `{"specversion":"1.0","id":"`...)
	dst = eventenc.AppendText(dst, idPrefix)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, e.source...)
	dst = append(dst, `,"subject":`...)
	dst = eventenc.AppendString(dst, m.Topic())
	dst = append(dst, `,"time":"`...)
	dst = e.clock.AppendTime(dst, now)
	dst = append(dst, `","data":{"topic":`...)
	dst = eventenc.AppendString(dst, m.Topic())
	dst = append(dst, `,"qos":`...)
	dst = strconv.AppendInt(dst, int64(m.Qos()), 10)
	dst = append(dst, `,"retained":`...)
	dst = strconv.AppendBool(dst, m.Retained())
	dst = append(dst, `,"duplicate":`...)
	dst = strconv.AppendBool(dst, m.Duplicate())
	dst = append(dst, `,"payload":`...)
	dst, nonJSON = eventenc.AppendBody(dst, m.Payload(), e.format)
	return append(dst, "}}"...), nonJSON
}
