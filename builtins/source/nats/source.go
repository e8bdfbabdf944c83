package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/natsconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// ErrClosed is returned by Read once Close was called.
var ErrClosed = errors.New("nats source closed")

// Register adds the nats source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "nats",
		Summary: "Read a NATS JetStream stream through a durable pull consumer, acknowledging each message after delivery.",
		Description: "Reads a JetStream stream through a durable pull consumer, created when missing (with the stream, over " +
			"`subjects`) or used as it is. Each message becomes a CloudEvent whose `data` holds the stream, subject, " +
			"sequence, headers and value; the event id is `<stream>-0-<sequence>`. A message is acknowledged only " +
			"once the engine delivered, filtered or dead-lettered its batch; until then the consumer's " +
			"`max_ack_pending` holds the server back (backpressure). Processes sharing a durable share its messages. " +
			"A crashed process's messages are delivered again after `ack_wait`. See docs/connectors/nats.md.",
		Example: `[source]
type = "nats"
url = "nats://127.0.0.1:4222"
stream = "ORDERS"
subjects = ["orders.>"]
durable = "orders-to-redis"
`,
		New:   newConfig,
		Build: build,
	})
}

// Source is the nats source.
type Source struct {
	cfg     *Config
	conn    *natsconf.Conn
	opts    []nats.Option
	durable string
	lane    string
	log     zerolog.Logger
	m       sourceMetrics
	enc     *encoder

	// The consume callback appends to queue; Read takes from it. The queue
	// needs no bound of its own: the server stops delivering at the
	// consumer's max_ack_pending.
	mu            sync.Mutex
	nc            *nats.Conn
	cons          jetstream.Consumer
	cc            jetstream.ConsumeContext
	ackWait       time.Duration
	maxAckPending int
	queue         []held
	wake          chan struct{} // closed and replaced when queue grows or an error comes
	fatal         error         // a terminal consume error, returned by Read
	inflight      map[*inflight]struct{}
	back          []jetstream.Msg // received while Close drains the client
	paused        bool
	closed        bool
	stop          chan struct{} // ends the keepalive goroutine
	stopped       chan struct{}
	// lastTick is when the keepalive last looked at the held messages:
	// a queued message it has not stamped yet arrived after it.
	lastTick time.Time

	spare sync.Pool // *inflight of acknowledged batches, for reuse
}

// held is a message received and not yet handed to the engine.
type held struct {
	msg jetstream.Msg
	// at is when the keepalive first saw it queued, or last reported it in
	// progress; zero until then (receive does not read the clock for every
	// message).
	at time.Time
}

// inflight is one batch handed to the engine and not acknowledged yet. It
// also owns the batch's memory (the events' buffer and the message
// slice), reused for a later batch once the engine acknowledged it.
type inflight struct {
	msgs []jetstream.Msg
	at   time.Time // when its messages were last reported in progress
	buf  []byte
	out  []message.Message
	use  uint64 // bumped at each reuse: a late second Ack of an earlier use is ignored
}

type sourceMetrics struct {
	records metrics.Counter
	pending metrics.Gauge
	redeliv metrics.Counter
	ackErrs metrics.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	durable := cfg.Durable
	if durable == "" {
		durable = "sluice-" + env.Task
		if msg := natsconf.NameProblem(durable); msg != "" {
			return nil, fmt.Errorf("default durable name: %s; set durable", msg)
		}
	}
	conn := cfg.conn()
	opts, err := conn.Options("sluice-"+env.Task, env.Dir, env.Logger)
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg: cfg, conn: conn, opts: opts, durable: durable,
		lane: "nats:" + cfg.Stream + "/" + durable,
		log:  env.Logger,
		enc:  newEncoder(firstHost(cfg.URL), cfg.Stream, cfg.ValueFormat, env.MaxEvent),
		wake: make(chan struct{}),
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sourceMetrics{
		records: ms.Counter("nats_consumer_records_total", "Messages read from JetStream.", "task").WithLabelValues(lbl),
		pending: ms.Gauge("nats_consumer_pending", "Messages of the stream not yet delivered to the durable (as of the last message read).", "task").WithLabelValues(lbl),
		redeliv: ms.Counter("nats_consumer_redelivered_total", "Messages read that the server had delivered before (a crash, a nack, an ack_wait that passed).", "task").WithLabelValues(lbl),
		ackErrs: ms.Counter("nats_consumer_ack_errors_total", "Acknowledgements that could not be sent (the message is delivered again after ack_wait).", "task").WithLabelValues(lbl),
	}
	return s, nil
}

// firstHost returns the host:port of the first server URL, for the events'
// source attribute.
func firstHost(urls string) string {
	first, _, _ := strings.Cut(urls, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Host == "" {
		return "nats"
	}
	return u.Host
}

// Open connects, makes sure the stream and the durable exist (creating
// them when allowed) and starts pulling.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.nc != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	nc, js, err := natsconf.Connect(ctx, s.conn, s.opts, true)
	if err != nil {
		return fmt.Errorf("open nats source: %w", err)
	}
	cons, err := s.ensure(ctx, js)
	if err != nil {
		nc.Close()
		return fmt.Errorf("open nats source: %w", err)
	}
	info := cons.CachedInfo()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	s.nc, s.cons = nc, cons
	s.ackWait = info.Config.AckWait
	s.maxAckPending = info.Config.MaxAckPending
	if s.ackWait <= 0 {
		s.ackWait = defaultAckWait
	}
	s.inflight = map[*inflight]struct{}{}
	err = s.consumeLocked()
	if err == nil {
		s.stop, s.stopped = make(chan struct{}), make(chan struct{})
		s.startKeepalive(s.ackWait)
	}
	s.mu.Unlock()
	if err != nil {
		_ = s.shutdown()
		return fmt.Errorf("open nats source: consume durable %q of stream %q: %w", s.durable, s.cfg.Stream, natsconf.Classify(err))
	}
	s.log.Info().Str("server", nc.ConnectedUrlRedacted()).Str("stream", s.cfg.Stream).Str("durable", s.durable).
		Int("max_ack_pending", info.Config.MaxAckPending).Dur("ack_wait", s.ackWait).Msg("nats source connected")
	return nil
}

// ensure returns the durable, creating the stream and the durable when
// they are missing and creation is allowed.
func (s *Source) ensure(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	stream, err := js.Stream(ctx, s.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		switch {
		case !s.cfg.Create:
			return nil, component.TaskPermanent(fmt.Errorf("stream %q does not exist on %s: create it, or set create = true and subjects to have Sluice create it", s.cfg.Stream, s.conn.Servers()))
		case len(s.cfg.Subjects) == 0:
			return nil, component.TaskPermanent(fmt.Errorf("stream %q does not exist on %s: create it, or set subjects (e.g. [\"orders.>\"]) so that Sluice can create it", s.cfg.Stream, s.conn.Servers()))
		}
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: s.cfg.Stream, Subjects: s.cfg.Subjects, Storage: jetstream.FileStorage})
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			stream, err = js.Stream(ctx, s.cfg.Stream) // another process was first
		case err == nil:
			s.log.Info().Str("stream", s.cfg.Stream).Strs("subjects", s.cfg.Subjects).Msg("created the JetStream stream (it was missing)")
		}
	}
	if err != nil {
		return nil, natsconf.Classify(fmt.Errorf("stream %q: %w", s.cfg.Stream, err))
	}
	cons, err := stream.Consumer(ctx, s.durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if !s.cfg.Create {
			return nil, component.TaskPermanent(fmt.Errorf("durable consumer %q does not exist on stream %q: create it, fix durable, or set create = true", s.durable, s.cfg.Stream))
		}
		cc := jetstream.ConsumerConfig{
			Durable:       s.durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.cfg.AckWait.D(),
			MaxAckPending: s.cfg.MaxAckPending,
			FilterSubject: s.cfg.Filter,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		if s.cfg.Start == "new" {
			cc.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		cons, err = stream.CreateConsumer(ctx, cc)
		switch {
		case errors.Is(err, jetstream.ErrConsumerExists):
			cons, err = stream.Consumer(ctx, s.durable) // another process was first
		case err == nil:
			s.log.Info().Str("stream", s.cfg.Stream).Str("durable", s.durable).Str("start", s.cfg.Start).
				Int("max_ack_pending", s.cfg.MaxAckPending).Msg("created the durable consumer (it was missing)")
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrNotPullConsumer) {
			return nil, component.TaskPermanent(fmt.Errorf("durable %q of stream %q is a push consumer: Sluice reads through a pull consumer; use another durable name", s.durable, s.cfg.Stream))
		}
		return nil, natsconf.Classify(fmt.Errorf("durable consumer %q of stream %q: %w", s.durable, s.cfg.Stream, err))
	}
	info := cons.CachedInfo()
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, component.TaskPermanent(fmt.Errorf("durable %q of stream %q acknowledges with %s: Sluice acknowledges each message after delivery and needs ack_policy explicit; use another durable name", s.durable, s.cfg.Stream, info.Config.AckPolicy))
	}
	if info.Config.MaxAckPending != s.cfg.MaxAckPending || info.Config.AckWait != s.cfg.AckWait.D() {
		s.log.Info().Int("max_ack_pending", info.Config.MaxAckPending).Dur("ack_wait", info.Config.AckWait).
			Msg("using the existing durable's settings, which differ from this task's max_ack_pending or ack_wait")
	}
	return cons, nil
}

// consumeLocked starts pulling into the queue.
func (s *Source) consumeLocked() error {
	// A pull larger than max_ack_pending could never be filled. Pulls
	// expire every 10s (heartbeats every 5s), so that a durable deleted on
	// the server is noticed within seconds.
	batch := min(s.cfg.MaxBatch, max(1, s.maxAckPending))
	cc, err := s.cons.Consume(s.receive,
		jetstream.PullMaxMessages(batch),
		jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(s.consumeError))
	if err != nil {
		return err
	}
	s.cc = cc
	return nil
}

// receive is the consume callback: it queues msg for Read.
func (s *Source) receive(msg jetstream.Msg) {
	s.mu.Lock()
	if s.closed {
		// Close is draining the client: it hands this back too.
		s.back = append(s.back, msg)
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, held{msg: msg})
	if len(s.queue) == 1 {
		s.notifyLocked()
	}
	s.mu.Unlock()
}

func (s *Source) notifyLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// consumeError handles errors the consumer reports while pulling. The
// client resumes by itself after a lost heartbeat or a reconnect; a deleted
// durable ends the task.
func (s *Source) consumeError(_ jetstream.ConsumeContext, err error) {
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrBadRequest):
		s.mu.Lock()
		if s.fatal == nil && !s.closed {
			s.fatal = component.TaskPermanent(fmt.Errorf("nats source: durable %q of stream %q: %w (it was deleted on the server; a restart creates it again when create = true, reading from start)", s.durable, s.cfg.Stream, err))
			s.notifyLocked()
		}
		s.mu.Unlock()
	case errors.Is(err, jetstream.ErrConnectionClosed):
		// Close is under way, or the client gave up the connection (the
		// server refused the credentials twice in a row on a reconnect):
		// then nothing is pulled again and Read must say so.
		s.mu.Lock()
		if s.fatal == nil && !s.closed && s.nc != nil && s.nc.IsClosed() {
			s.fatal = s.connClosedLocked()
			s.notifyLocked()
		}
		s.mu.Unlock()
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		// The server went quiet: a cut connection (the client reconnects)
		// or a durable deleted on a server too old to say so.
		s.log.Warn().Err(err).Str("durable", s.durable).Msg("nats source: pulling; the client retries")
		go s.checkDurable()
	default:
		s.log.Warn().Err(err).Str("durable", s.durable).Msg("nats source: pulling; the client retries")
	}
}

// checkDurable stops the task when the durable no longer exists.
func (s *Source) checkDurable() {
	s.mu.Lock()
	cons, closed := s.cons, s.closed
	s.mu.Unlock()
	if cons == nil || closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cons.Info(ctx); errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.consumeError(nil, jetstream.ErrConsumerDeleted)
	}
}

// Read returns the next batch: the messages received so far, at most
// max_batch of them, in the order the server delivered them. It blocks
// until a message arrives, ctx ends or the source is closed.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return component.Batch{}, ErrClosed
		case s.nc == nil:
			s.mu.Unlock()
			return component.Batch{}, errors.New("nats source: Read before Open")
		case s.fatal != nil:
			err := s.fatal
			s.mu.Unlock()
			return component.Batch{}, err
		}
		if len(s.queue) > 0 {
			n := min(len(s.queue), s.cfg.MaxBatch)
			f, _ := s.spare.Get().(*inflight)
			if f == nil {
				f = &inflight{}
			}
			// The batch is as old as its oldest message: last reported
			// in progress (or first seen by the keepalive) then, or,
			// not seen yet, received after the keepalive's last tick.
			// Counting it from now let a message that had waited
			// almost two periods unreported wait a third.
			f.at = time.Time{}
			f.msgs = f.msgs[:0]
			for i := range n {
				f.msgs = append(f.msgs, s.queue[i].msg)
				at := s.queue[i].at
				if at.IsZero() {
					at = s.lastTick
				}
				if i == 0 || at.Before(f.at) {
					f.at = at
				}
			}
			rest := copy(s.queue, s.queue[n:])
			clear(s.queue[rest:])
			s.queue = s.queue[:rest]
			s.inflight[f] = struct{}{}
			use := f.use
			s.mu.Unlock()
			b := s.encode(f)
			b.Lane = s.lane
			b.Ack = func(err error) { s.ack(f, use, err) }
			return b, nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		}
	}
}

// encode builds the batch's events in one buffer, f's (grown when the
// messages need more room: events point into it, so it is sized before the
// first is written).
func (s *Source) encode(f *inflight) component.Batch {
	msgs := f.msgs
	size := 0
	for _, m := range msgs {
		size += s.enc.sizeHint(m)
	}
	if cap(f.buf) < size {
		f.buf = make([]byte, 0, size+size/4)
	}
	buf := f.buf[:0]
	if cap(f.out) < len(msgs) {
		f.out = make([]message.Message, len(msgs))
	}
	out := f.out[:len(msgs)]
	var redelivered int
	var pending uint64
	for i, m := range msgs {
		out[i] = message.Message{}
		var md ackMeta
		var ok bool
		buf, md, ok = s.enc.appendMessage(buf, &out[i], m)
		if ok {
			if md.delivered > 1 {
				redelivered++
			}
			pending = md.pending
		}
	}
	f.buf = buf
	s.m.records.Add(uint64(len(msgs)))
	s.m.pending.Set(float64(pending))
	if redelivered > 0 {
		s.m.redeliv.Add(uint64(redelivered))
	}
	return component.Batch{Messages: out}
}

// ack settles a batch: each message is acknowledged after a nil error and
// handed back to the server (delivered again at once, here or to another
// process) after an error.
func (s *Source) ack(f *inflight, use uint64, err error) {
	s.mu.Lock()
	_, mine := s.inflight[f]
	mine = mine && f.use == use
	if mine {
		delete(s.inflight, f)
	}
	s.mu.Unlock()
	if !mine {
		return // Close handed it back already
	}
	defer s.recycle(f)
	failed := 0
	for _, m := range f.msgs {
		var aerr error
		if err == nil {
			aerr = m.Ack()
		} else {
			aerr = m.Nak()
		}
		if aerr != nil {
			failed++
		}
	}
	if failed > 0 {
		s.m.ackErrs.Add(uint64(failed))
		s.log.Warn().Int("messages", failed).Bool("nack", err != nil).Msg("nats source: could not send acknowledgements (connection lost?); the server delivers those messages again after ack_wait")
	}
}

// recycle keeps an acknowledged batch's memory for a later batch: the
// engine reads none of it once it acknowledged the batch.
func (s *Source) recycle(f *inflight) {
	clear(f.msgs)
	clear(f.out) // drops the references to headers and keys
	f.msgs, f.out, f.buf = f.msgs[:0], f.out[:0], f.buf[:0]
	s.mu.Lock()
	f.use++
	s.mu.Unlock()
	s.spare.Put(f)
}

// startKeepalive starts the keepalive goroutine, which ends when s.stop
// is closed. Called with s.mu held, or before the source is shared.
func (s *Source) startKeepalive(ackWait time.Duration) {
	s.lastTick = time.Now()
	go s.keepalive(ackWait, s.stop, s.stopped)
}

// keepalive tells the server that messages held longer than a third of
// ack_wait (queued, or in batches the engine is still working on, such as
// a sink being retried) are still in progress, so that they are not
// delivered again to another process while this one holds them.
func (s *Source) keepalive(ackWait time.Duration, stop, stopped chan struct{}) {
	defer close(stopped)
	every := ackWait / 3
	// Held "a period" is tested against half of one: ticks come a hair
	// early as often as late, and a message stamped at one tick that
	// missed the next by a microsecond went unreported until the third,
	// a whole ack_wait after it arrived, and was delivered again.
	due := every / 2
	t := time.NewTicker(every)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			msgs = msgs[:0]
			s.mu.Lock()
			for i := range s.queue {
				// A message first seen here is stamped now: it was
				// received within the last period, so it is reported
				// at most two periods (two thirds of ack_wait) after
				// it arrived.
				switch at := s.queue[i].at; {
				case at.IsZero():
					s.queue[i].at = now
				case now.Sub(at) >= due:
					msgs = append(msgs, s.queue[i].msg)
					s.queue[i].at = now
				}
			}
			for f := range s.inflight {
				if now.Sub(f.at) >= due {
					msgs = append(msgs, f.msgs...)
					f.at = now
				}
			}
			s.lastTick = now
			s.mu.Unlock()
			for _, m := range msgs {
				_ = m.InProgress()
			}
			clear(msgs)
		}
	}
}

// Pause stops pulling. Messages already received stay queued, reported
// in progress, and are handed out after Resume: handed back now, they could
// be sent to a pull request of this connection that the server still
// holds, and wait for ack_wait.
//
// It returns once the pull subscription is drained (or after a bound, when
// the server does not answer): a Resume before that pulled on a second
// subscription while the first still delivered what the server had sent
// to its pull request, and the two interleaved out of stream order.
func (s *Source) Pause() {
	s.mu.Lock()
	if s.paused || s.closed {
		s.mu.Unlock()
		return
	}
	s.paused = true
	cc := s.cc
	s.cc = nil
	s.mu.Unlock()
	if cc != nil {
		cc.Drain() // what the client still holds reaches receive, which queues it
		t := time.NewTimer(pauseDrainWait)
		defer t.Stop()
		select {
		case <-cc.Closed():
		case <-t.C:
		}
	}
}

// pauseDrainWait bounds how long Pause waits for the pull subscription to
// drain.
const pauseDrainWait = 2 * time.Second

// Resume undoes Pause.
func (s *Source) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused || s.closed {
		return
	}
	s.paused = false
	if s.cons == nil {
		return
	}
	if err := s.consumeLocked(); err != nil {
		// The pull cannot start only on a connection the client closed
		// (or a durable it cannot pull from): retrying Read would return
		// the same error forever, and the task would never read again.
		if s.nc != nil && s.nc.IsClosed() {
			s.fatal = s.connClosedLocked()
		} else {
			s.fatal = component.TaskPermanent(fmt.Errorf("nats source: resume pulling from durable %q: %w", s.durable, err))
		}
		s.notifyLocked()
	}
}

// connClosedLocked is the error of a connection the client closed by
// itself (see natsconf.ClosedByClient).
func (s *Source) connClosedLocked() error {
	return natsconf.ClosedByClient(s.conn, s.nc, "nats source")
}

func (s *Source) takeQueueLocked() []jetstream.Msg {
	q := make([]jetstream.Msg, len(s.queue))
	for i := range s.queue {
		q[i] = s.queue[i].msg
	}
	clear(s.queue)
	s.queue = s.queue[:0]
	return q
}

// Close stops pulling and hands back to the server every message not
// acknowledged (queued, or in batches never settled), so that they are
// delivered again at once rather than after ack_wait; acknowledgements
// already sent are flushed first. It unblocks a pending Read. It is safe
// without Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyLocked()
	cc := s.cc
	s.cc = nil
	back := s.takeQueueLocked()
	for f := range s.inflight {
		back = append(back, f.msgs...)
		delete(s.inflight, f)
	}
	s.mu.Unlock()
	if cc != nil {
		// Drain rather than Stop: messages the client already received are
		// passed to receive, which hands them back, instead of being
		// dropped and left to ack_wait.
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	back = append(back, s.back...)
	s.back = nil
	s.mu.Unlock()
	err := s.shutdown()
	// The server keeps this connection's pull requests until they expire
	// or the connection closes: a message handed back before that could be
	// sent to one of them and wait ack_wait. So it is handed back once the
	// connection is closed, through a short-lived one.
	if len(back) > 0 {
		s.handBack(ctx, back)
	}
	return err
}

// handBack tells the server, on a new connection, that msgs were not
// handled (-NAK on their reply subjects), so that it delivers them again
// soon. The server drops a closed connection's pull requests a moment after
// the close: the short delay keeps a message from being sent to one of
// them. When the server cannot be reached they come again after ack_wait.
func (s *Source) handBack(ctx context.Context, msgs []jetstream.Msg) {
	nc, err := nats.Connect(s.conn.URL, s.opts...)
	if err != nil {
		s.log.Info().Err(err).Int("messages", len(msgs)).Msg("nats source: could not hand back unacknowledged messages; the server delivers them again after ack_wait")
		return
	}
	defer nc.Close()
	for _, m := range msgs {
		if r := m.Reply(); r != "" {
			_ = nc.Publish(r, nakBody)
		}
	}
	_ = nc.FlushWithContext(ctx)
}

var nakBody = []byte(`-NAK {"delay":500000000}`)

// shutdown ends the keepalive and closes the connection after flushing
// what was sent (acknowledgements, naks).
func (s *Source) shutdown() error {
	s.mu.Lock()
	nc, stop, stopped := s.nc, s.stop, s.stopped
	s.nc, s.stop = nil, nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
	if nc == nil {
		return nil
	}
	var err error
	if nc.IsConnected() {
		if ferr := nc.FlushTimeout(5 * time.Second); ferr != nil {
			err = fmt.Errorf("close nats source: flush acknowledgements: %w", ferr)
		}
	}
	nc.Close()
	return err
}
