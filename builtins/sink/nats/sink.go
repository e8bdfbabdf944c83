package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/natsconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Register adds the nats sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "nats",
		Summary: "Publish records to a NATS subject: into a JetStream stream with acknowledgements and duplicate removal, or core NATS fire-and-forget.",
		Description: "Publishes each record's payload to `subject` (a template over the original source event). In " +
			"`jetstream` mode (the default) each message carries a `Nats-Msg-Id` derived from the event id, so that the " +
			"stream's duplicate window drops what a replay after a crash publishes again, and Write returns once the " +
			"stream acknowledged every message. A missing stream is created over `subjects` when `stream` is set. In " +
			"`core` mode messages are fire-and-forget. See docs/connectors/nats.md.",
		Example: `[sink]
type = "nats"
url = "nats://127.0.0.1:4222"
subject = "orders.${region}"
variables = { region = "$.data.value.region" }
stream = "ORDERS_BY_REGION"
subjects = ["orders.*"]
`,
		New:   newConfig,
		Build: build,
	})
}

// Sink is the nats sink.
type Sink struct {
	cfg  *Config
	conn *natsconf.Conn
	opts []nats.Option
	tpl  *templates
	log  zerolog.Logger
	m    sinkMetrics

	mu     sync.Mutex
	nc     *nats.Conn
	js     jetstream.JetStream
	closed bool
}

type sinkMetrics struct {
	records    metrics.Counter
	duplicates metrics.Counter
	errors     *metrics.CounterVec // error_type
	latency    metrics.Observer
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	tpl, ok := cfg.compile(nil, env.MaxEvent)
	if !ok {
		return nil, errors.New("nats sink: invalid templates") // Validate reported the details
	}
	conn := cfg.conn()
	opts, err := conn.Options("sluice-"+env.Task, env.Dir, env.Logger)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, conn: conn, opts: opts, tpl: tpl, log: env.Logger}
	lbl := env.Task
	ms := env.Metrics
	s.m = sinkMetrics{
		records:    ms.Counter("nats_publish_records_total", "Messages published (and, in jetstream mode, acknowledged by the stream).", "task").WithLabelValues(lbl),
		duplicates: ms.Counter("nats_publish_duplicates_total", "Messages the stream acknowledged as duplicates of one published within its duplicate window (a replay), and did not store again.", "task").WithLabelValues(lbl),
		errors:     ms.Counter("nats_publish_errors_total", "Messages that failed to publish, by error class.", "task", "error_type").Curry(lbl),
		latency:    ms.Histogram("nats_publish_seconds", "Time for one Write, from the first message published to the last acknowledgement.", nil, "task").WithLabelValues(lbl),
	}
	return s, nil
}

// DeadLetterRaw tells the engine that, as a dead-letter sink, this sink
// keeps the original event as the message body and the failure details as
// headers.
func (s *Sink) DeadLetterRaw() bool { return true }

// Open connects and, in jetstream mode, checks that a stream captures the
// subject, creating the configured stream when it is missing.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.nc != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	js := s.cfg.Mode == ModeJetStream
	nc, jsc, err := natsconf.Connect(ctx, s.conn, s.opts, js,
		jetstream.WithPublishAsyncMaxPending(s.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(s.cfg.AckTimeout.D()))
	if err != nil {
		return fmt.Errorf("open nats sink: %w", err)
	}
	if js {
		if err := s.ensureStream(ctx, jsc); err != nil {
			nc.Close()
			return fmt.Errorf("open nats sink: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return nil
	}
	s.nc, s.js = nc, jsc
	s.log.Info().Str("server", nc.ConnectedUrlRedacted()).Str("subject", s.cfg.Subject).Str("mode", s.cfg.Mode).Msg("nats sink connected")
	return nil
}

func (s *Sink) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	if s.cfg.Stream == "" {
		if s.tpl.fixedSubject == "" {
			return nil // each message finds its stream by its subject
		}
		_, err := js.StreamNameBySubject(ctx, s.tpl.fixedSubject)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return component.TaskPermanent(fmt.Errorf("no JetStream stream captures subject %q on %s: create one, set stream (and subjects) to have Sluice create it, or use mode = \"core\"", s.tpl.fixedSubject, s.conn.Servers()))
		}
		if err != nil {
			return natsconf.Classify(fmt.Errorf("find the stream of subject %q: %w", s.tpl.fixedSubject, err))
		}
		return nil
	}
	_, err := js.Stream(ctx, s.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		subjects := s.cfg.Subjects
		if len(subjects) == 0 && s.tpl.fixedSubject != "" {
			subjects = []string{s.tpl.fixedSubject}
		}
		switch {
		case !s.cfg.Create:
			return component.TaskPermanent(fmt.Errorf("stream %q does not exist on %s: create it, or set create = true to have Sluice create it", s.cfg.Stream, s.conn.Servers()))
		case len(subjects) == 0:
			return component.TaskPermanent(fmt.Errorf("stream %q does not exist on %s: create it, or set subjects (e.g. [\"orders.*\"]) so that Sluice can create it", s.cfg.Stream, s.conn.Servers()))
		}
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: s.cfg.Stream, Subjects: subjects, Storage: jetstream.FileStorage, Duplicates: s.cfg.DuplicateWindow.D(),
		})
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			err = nil // another process was first
		case err == nil:
			s.log.Info().Str("stream", s.cfg.Stream).Strs("subjects", subjects).Dur("duplicate_window", s.cfg.DuplicateWindow.D()).
				Msg("created the JetStream stream (it was missing)")
		}
	}
	if err != nil {
		return natsconf.Classify(fmt.Errorf("stream %q: %w", s.cfg.Stream, err))
	}
	return nil
}

// Write publishes msgs and returns once every one was acknowledged by its
// stream (jetstream mode) or received by the server (core mode).
// Per-record failures come back as a *component.RecordErrors.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	s.mu.Lock()
	nc, js := s.nc, s.js
	s.mu.Unlock()
	if nc == nil {
		return errors.New("nats sink: Write before Open or after Close")
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	var errs map[int]error
	fail := func(i int, err error) {
		if errs == nil {
			errs = map[int]error{}
		}
		errs[i] = err
	}
	if s.cfg.Mode == ModeCore {
		s.publishCore(ctx, nc, msgs, fail)
	} else {
		s.publishJetStream(ctx, js, msgs, fail)
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.records.Add(uint64(len(msgs) - len(errs)))
	if len(errs) == 0 {
		return nil
	}
	if nc.IsClosed() {
		// The client gave up the connection (the server refused the
		// credentials twice in a row): retrying would fail every record
		// until the process restarts, sending each to the dead-letter
		// queue. Stop the task, as a refused login at start does.
		s.mu.Lock()
		closing := s.closed
		s.mu.Unlock()
		if !closing {
			return natsconf.ClosedByClient(s.conn, nc, "nats sink")
		}
	}
	for _, err := range errs {
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Inc()
	}
	return &component.RecordErrors{Errs: errs}
}

// publishJetStream publishes asynchronously, up to max_pending messages
// outstanding over every Write, then waits for each acknowledgement.
func (s *Sink) publishJetStream(ctx context.Context, js jetstream.JetStream, msgs []message.Message, fail func(int, error)) {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	var streams streamLookup
	var buf []byte
	for i := range msgs {
		nm, b, err := s.natsMsg(&msgs[i], buf, true)
		buf = b
		if err != nil {
			fail(i, component.EventPermanent(err))
			continue
		}
		wait := s.cfg.AckTimeout.D()
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 || ctx.Err() != nil {
			fail(i, component.Retryable(fmt.Errorf("publish to %q: %w", nm.Subject, context.Cause(ctx)), 0))
			continue
		}
		// No retries inside the client: a retry would publish from the
		// record's buffer after Write returned. The task's policy retries.
		opts := []jetstream.PublishOpt{jetstream.WithStallWait(wait), jetstream.WithRetryAttempts(0)}
		if s.cfg.Stream != "" {
			// The server refuses a message that would land in another
			// stream (docs/connectors/nats.md, "The stream").
			opts = append(opts, jetstream.WithExpectStream(s.cfg.Stream))
		}
		f, err := js.PublishMsgAsync(nm, opts...)
		if err != nil {
			fail(i, s.classify(ctx, &streams, js, nm.Subject, err))
			continue
		}
		futs[i] = f
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				s.m.duplicates.Inc()
			}
		case err := <-f.Err():
			fail(i, s.classify(ctx, &streams, js, f.Msg().Subject, err))
		case <-ctx.Done():
			fail(i, component.Retryable(fmt.Errorf("publish to %q: not acknowledged: %w", f.Msg().Subject, context.Cause(ctx)), 0))
		}
	}
}

// publishCore publishes fire-and-forget, then makes one round trip so that
// Write returns once the server has read every message.
func (s *Sink) publishCore(ctx context.Context, nc *nats.Conn, msgs []message.Message, fail func(int, error)) {
	var buf []byte
	sent := make([]int, 0, len(msgs))
	for i := range msgs {
		nm, b, err := s.natsMsg(&msgs[i], buf, false)
		buf = b
		if err == nil {
			err = nc.PublishMsg(nm)
			if err != nil {
				err = s.classify(ctx, nil, nil, nm.Subject, err)
			}
		} else {
			err = component.EventPermanent(err)
		}
		if err != nil {
			fail(i, err)
			continue
		}
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		err = component.Retryable(fmt.Errorf("publish: the server did not confirm receipt: %w", err), 0)
		for _, i := range sent {
			fail(i, err)
		}
	}
}

// natsMsg builds the NATS message of m. Rendered text is appended to buf,
// which it returns.
func (s *Sink) natsMsg(m *message.Message, buf []byte, jetstream bool) (*nats.Msg, []byte, error) {
	t := s.tpl
	nm := &nats.Msg{Data: m.Payload}
	if t.fixedSubject != "" {
		nm.Subject = t.fixedSubject
	} else {
		start := len(buf)
		var err error
		if buf, err = t.subject.Render(buf, m.Event); err != nil {
			return nil, buf, fmt.Errorf("subject template over event %s: %w", m.Pos, err)
		}
		nm.Subject = string(buf[start:])
		if msg := natsconf.SubjectProblem(nm.Subject, false); msg != "" {
			return nil, buf, fmt.Errorf("subject template %q over event %s: %s", s.cfg.Subject, m.Pos, msg)
		}
	}
	if s.cfg.ForwardHeaders && len(m.Headers) > 0 || len(t.headers) > 0 || jetstream && s.cfg.Dedup != DedupNone {
		nm.Header = make(nats.Header, len(m.Headers)+len(t.headers)+1)
	}
	if s.cfg.ForwardHeaders {
		for _, h := range m.Headers {
			// A record from JetStream carries the control headers of its
			// own publish (its Nats-Msg-Id, expectations): forwarding them
			// would drop or refuse this one.
			if t.overrides(h.Key) || len(h.Key) >= 5 && strings.EqualFold(h.Key[:5], "nats-") {
				continue
			}
			if msg := natsconf.HeaderProblem(h.Key, string(h.Value)); msg != "" {
				return nil, buf, fmt.Errorf("forwarded header of event %s: %s", m.Pos, msg)
			}
			nm.Header.Add(h.Key, string(h.Value))
		}
	}
	for _, h := range t.headers {
		start := len(buf)
		var err error
		if buf, err = h.tpl.Render(buf, m.Event); err != nil {
			return nil, buf, fmt.Errorf("header %q template over event %s: %w", h.name, m.Pos, err)
		}
		v := string(buf[start:])
		if msg := natsconf.HeaderProblem(h.name, v); msg != "" {
			return nil, buf, fmt.Errorf("header template over event %s: %s", m.Pos, msg)
		}
		nm.Header.Set(h.name, v)
	}
	if jetstream && s.cfg.Dedup != DedupNone {
		start := len(buf)
		buf = appendMsgID(buf, m, s.cfg.Dedup == DedupEventPayload)
		nm.Header.Set(jetstreamMsgID, string(buf[start:]))
	}
	return nm, buf, nil
}

const jetstreamMsgID = "Nats-Msg-Id"

var idPath = []jsonscan.Seg{{Key: "id"}}

// appendMsgID appends the Nats-Msg-Id of m: the id of its original event
// (its position when the event has none), and with payload a hash of the
// payload, so that several outputs of one event get different ids while
// a replay of the same output gets the same.
func appendMsgID(dst []byte, m *message.Message, payload bool) []byte {
	n := len(dst)
	if i, j, ok := jsonscan.Get(m.Event, idPath); ok {
		dst, ok = jsonscan.AppendString(dst, m.Event[i:j])
		if !ok {
			dst = dst[:n]
		}
	}
	if len(dst) == n {
		dst = m.Pos.AppendID(dst)
	}
	if payload {
		dst = append(dst, ':')
		h := xxhash.Sum64(m.Payload)
		for shift := 60; shift >= 0; shift -= 4 {
			dst = append(dst, "0123456789abcdef"[h>>uint(shift)&0xf])
		}
	}
	return dst
}

// classify maps a publish failure to its class. No answer to a publish
// stops nothing by itself. A fixed subject (checked at Open) is retried:
// its stream may be moving. A templated subject fails its record only when
// the server says that no stream captures it (streams, js: nil in core
// mode); no answer also comes from a stream that exists but has no leader
// for a moment (an election in a cluster, a server restarting), which a
// retry outlives.
func (s *Sink) classify(ctx context.Context, streams *streamLookup, js jetstream.JetStream, subject string, err error) error {
	err = fmt.Errorf("publish to %q: %w", subject, err)
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		if s.tpl.fixedSubject != "" || js == nil {
			return component.Retryable(fmt.Errorf("%w (no JetStream stream captures the subject, or it is unavailable)", err), 0)
		}
		switch stream, lerr := streams.lookup(ctx, js, subject, s.cfg.AckTimeout.D()); {
		case errors.Is(lerr, jetstream.ErrStreamNotFound):
			return component.EventPermanent(fmt.Errorf("%w (no JetStream stream captures the subject)", err))
		case lerr != nil:
			return component.Retryable(fmt.Errorf("%w (and JetStream did not say which stream captures it: %v)", err, lerr), 0)
		default:
			return component.Retryable(fmt.Errorf("%w (stream %q captures the subject but did not answer: it may be electing a leader)", err, stream), 0)
		}
	case isStreamMismatch(err):
		err = fmt.Errorf("%w (the subject belongs to another stream than stream = %q)", err, s.cfg.Stream)
		if s.tpl.fixedSubject == "" {
			return component.EventPermanent(err)
		}
		return component.TaskPermanent(err) // every record would be refused
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return component.Retryable(fmt.Errorf("%w: not acknowledged within ack_timeout (%s)", err, s.cfg.AckTimeout), 0)
	}
	return natsconf.Classify(err)
}

// streamLookup remembers, for one Write, which stream captures each
// subject whose publish had no answer: a batch to one unavailable stream
// asks the server once.
type streamLookup map[string]streamAnswer

type streamAnswer struct {
	stream string
	err    error
}

// lookup asks which stream captures subject, waiting at most wait (and
// ctx).
func (l *streamLookup) lookup(ctx context.Context, js jetstream.JetStream, subject string, wait time.Duration) (string, error) {
	if a, ok := (*l)[subject]; ok {
		return a.stream, a.err
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stream, err := js.StreamNameBySubject(lctx, subject)
	if *l == nil {
		*l = streamLookup{}
	}
	(*l)[subject] = streamAnswer{stream, err}
	return stream, err
}

// jsErrStreamNotMatch is the server's error code for a publish whose
// expected stream (Nats-Expected-Stream) is not the stream that captures
// the subject.
const jsErrStreamNotMatch jetstream.ErrorCode = 10060

func isStreamMismatch(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStreamNotMatch
}

// Close flushes what core mode published and closes the connection. It is
// safe without Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	nc := s.nc
	s.nc, s.js = nil, nil
	s.closed = true
	s.mu.Unlock()
	if nc == nil {
		return nil
	}
	var err error
	if nc.IsConnected() {
		if ferr := nc.FlushWithContext(ctx); ferr != nil {
			err = fmt.Errorf("close nats sink: flush: %w", ferr)
		}
	}
	nc.Close()
	return err
}
