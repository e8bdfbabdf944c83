package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// ErrClosed is returned by Read once Close was called.
var ErrClosed = errors.New("kafka source closed")

// Register adds the kafka source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "kafka",
		Summary: "Consume Kafka topics in a consumer group; each record becomes a CloudEvent.",
		Description: "Consumes `topics` (or `topics_regex`) in the consumer group `group` and emits one CloudEvent per record, " +
			"with `data.topic`, `data.partition`, `data.offset`, `data.timestamp`, `data.headers`, `data.key` and `data.value`; " +
			"the event id is `<topic>-<partition>-<offset>`. Offsets are committed only once every record before them was " +
			"delivered, filtered or dead-lettered (at-least-once). See docs/kafka.md.",
		Example: `[source]
type = "kafka"
brokers = ["127.0.0.1:9092"]
topics = ["orders"]
group = "sluice-orders"
offset = "earliest"
`,
		New:   newConfig,
		Build: build,
	})
}

// Source is the kafka source. Besides component.Source it offers Pause and
// Resume, which stop fetching while the member stays in its group.
type Source struct {
	cfg      *Config
	log      zerolog.Logger
	opts     []kgo.Opt
	group    string
	enc      *encoder
	maxEvent int
	m        sourceMetrics

	// extra are options appended last; tests use them to shorten timers.
	extra []kgo.Opt

	cl *kgo.Client

	mu       sync.Mutex
	parts    map[tp]*partState
	queue    []queued
	closing  bool
	closed   bool
	paused   bool
	assigned map[string]bool // topics with assigned partitions
	ackCh    chan struct{}   // closed and replaced on every ack while waiters > 0
	waiters  int
}

type queued struct {
	b  component.Batch
	st *partState
	p  *pending
}

type sourceMetrics struct {
	records prometheus.Counter
	nonJSON prometheus.Counter
	lag     *prometheus.GaugeVec // topic, partition
	commit  prometheus.Observer
	commitE prometheus.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	conn := kafkaconf.Conn{Brokers: cfg.Brokers, ClientID: cfg.ClientID, SASL: cfg.SASL, TLS: cfg.TLS, DialTimeout: cfg.DialTimeout.D()}
	opts, err := conn.Options(env.Dir, env.Logger)
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg:      cfg,
		log:      env.Logger,
		opts:     opts,
		group:    cfg.Group,
		enc:      newEncoder(cfg.Brokers[0], cfg.ValueFormat, cfg.KeyFormat),
		maxEvent: env.MaxEvent,
		parts:    map[tp]*partState{},
		assigned: map[string]bool{},
	}
	if s.group == "" {
		s.group = "sluice-" + env.Task
	}
	if env.Metrics != nil {
		lbl := prometheus.Labels{"task": env.Task}
		ms := env.Metrics
		s.m = sourceMetrics{
			records: ms.Counter("kafka_consumer_records_total", "Records read from Kafka.", "task").With(lbl),
			nonJSON: ms.Counter("kafka_value_not_json_total", "Record values that value_format = \"json\" could not parse and kept as a string.", "task").With(lbl),
			lag:     ms.Gauge("kafka_consumer_lag", "Records between the last one read and the partition's high watermark.", "task", "topic", "partition").MustCurryWith(lbl),
			commit:  ms.Histogram("kafka_consumer_commit_seconds", "Time of one offset commit request.", nil, "task").With(lbl),
			commitE: ms.Counter("kafka_consumer_commit_errors_total", "Offset commits that failed.", "task").With(lbl),
		}
	} else {
		s.m = sourceMetrics{
			records: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			nonJSON: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			lag:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x"}, []string{"topic", "partition"}),
			commit:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x"}),
			commitE: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
		}
	}
	return s, nil
}

// Group returns the consumer group the source joins.
func (s *Source) Group() string { return s.group }

func (s *Source) clientOptions() ([]kgo.Opt, error) {
	cfg := s.cfg
	opts := slices.Clone(s.opts)
	kind, ms, _ := ParseOffset(cfg.Offset)
	start := kgo.NewOffset().AtEnd()
	switch kind {
	case StartEarliest:
		start = kgo.NewOffset().AtStart()
	case StartTime:
		start = kgo.NewOffset().AfterMilli(ms)
	}
	var balancer kgo.GroupBalancer
	switch cfg.RebalanceStrategy {
	case "sticky":
		balancer = kgo.StickyBalancer()
	case "range":
		balancer = kgo.RangeBalancer()
	case "roundrobin":
		balancer = kgo.RoundRobinBalancer()
	default:
		balancer = kgo.CooperativeStickyBalancer()
	}
	iso := kgo.ReadUncommitted()
	if cfg.IsolationLevel == "read_committed" {
		iso = kgo.ReadCommitted()
	}
	opts = append(opts,
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeStartOffset(start),
		kgo.Balancers(balancer),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxBytes(int32(cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(cfg.FetchMaxPartitionBytes)),
		kgo.FetchMinBytes(int32(cfg.FetchMinBytes)),
		kgo.FetchMaxWait(cfg.FetchMaxWait.D()),
		kgo.SessionTimeout(cfg.SessionTimeout.D()),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout.D()),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval.D()),
		// Commit only what the engine acknowledged (marks), on a timer,
		// and never across a rebalance: polls and the partition callbacks
		// gate each other, and Read allows rebalances again right after
		// it has registered what it polled.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitInterval.D()),
		kgo.AutoCommitCallback(s.onAutoCommit),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.WithHooks(commitTimer{s.m.commit}),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.TopicsRegex != "" {
		opts = append(opts, kgo.ConsumeTopics(cfg.TopicsRegex), kgo.ConsumeRegex())
	} else {
		opts = append(opts, kgo.ConsumeTopics(cfg.Topics...))
	}
	return append(opts, s.extra...), nil
}

// Open connects, checks that the brokers accept the credentials and that
// the configured topics exist, and starts consuming.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.cl != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	opts, err := s.clientOptions()
	if err != nil {
		return err
	}
	// Check with a plain client first: a consumer client would start
	// joining the group right away, before we know the topics exist.
	probe, err := kgo.NewClient(s.opts...)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("open kafka source: %w", err))
	}
	err = s.probe(ctx, kadm.NewClient(probe))
	probe.Close()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("open kafka source: %w", err))
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	s.log.Info().Str("group", s.group).Strs("brokers", s.cfg.Brokers).Msg("kafka source connected")
	return nil
}

func (s *Source) probe(ctx context.Context, adm *kadm.Client) error {
	md, err := adm.Metadata(ctx, s.cfg.Topics...)
	if err != nil {
		return kafkaconf.Classify(fmt.Errorf("open kafka source: brokers %v: %w", s.cfg.Brokers, err))
	}
	var missing []string
	for _, t := range s.cfg.Topics {
		td, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		case td.Err != nil:
			return kafkaconf.Classify(fmt.Errorf("open kafka source: topic %q: %w", t, td.Err))
		}
	}
	if len(missing) > 0 {
		return component.TaskPermanent(fmt.Errorf("open kafka source: topics %q do not exist on %v: create them or fix `topics`", missing, s.cfg.Brokers))
	}
	return nil
}

// Read returns the next batch: the records polled from one partition,
// in offset order. It blocks until records arrive or ctx ends.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return component.Batch{}, ErrClosed
		}
		cl := s.cl
		if len(s.queue) > 0 {
			q := s.queue[0]
			s.queue[0] = queued{}
			s.queue = s.queue[1:]
			q.p.handed = true
			s.mu.Unlock()
			return q.b, nil
		}
		s.mu.Unlock()
		if cl == nil {
			return component.Batch{}, errors.New("kafka source: Read before Open")
		}
		fs := cl.PollRecords(ctx, s.cfg.MaxPollRecords)
		err := s.take(fs)
		cl.AllowRebalance()
		if err != nil {
			return component.Batch{}, err
		}
		if ctx.Err() != nil {
			return component.Batch{}, ctx.Err()
		}
	}
}

// take turns a poll into queued batches, one per partition. It runs while
// rebalances are blocked, so the partitions it sees are still ours.
func (s *Source) take(fs kgo.Fetches) error {
	var fatal error
	for _, fe := range fs.Errors() {
		switch {
		case errors.Is(fe.Err, kgo.ErrClientClosed):
			return ErrClosed
		case errors.Is(fe.Err, context.Canceled), errors.Is(fe.Err, context.DeadlineExceeded):
			// Read checks its own ctx.
		case kafkaconf.Class(fe.Err) == component.ClassTaskPermanent:
			fatal = component.TaskPermanent(fmt.Errorf("kafka source: topic %q partition %d: %w", fe.Topic, fe.Partition, fe.Err))
		default:
			// franz-go retries these itself; they tell the operator why
			// a partition is slow.
			s.log.Warn().Err(fe.Err).Str("topic", fe.Topic).Int32(logx.Partition, fe.Partition).Msg("fetch error; the client retries")
		}
	}
	type chunk struct {
		st *partState
		fp *kgo.FetchPartition
	}
	var chunks []chunk
	s.mu.Lock()
	fs.EachTopic(func(ft kgo.FetchTopic) {
		for i := range ft.Partitions {
			fp := &ft.Partitions[i]
			if len(fp.Records) == 0 {
				continue
			}
			st := s.parts[tp{ft.Topic, fp.Partition}]
			if st == nil || st.dead {
				continue // no longer ours: the new owner reads it from the committed offset
			}
			chunks = append(chunks, chunk{st, fp})
		}
	})
	s.mu.Unlock()
	for _, c := range chunks {
		b := s.encode(c.st, c.fp.Records)
		last := c.fp.Records[len(c.fp.Records)-1]
		if c.fp.HighWatermark >= 0 {
			s.m.lag.WithLabelValues(c.st.topic, strconv.Itoa(int(c.st.part))).Set(float64(max(0, c.fp.HighWatermark-last.Offset-1)))
		}
		s.mu.Lock()
		if c.st.dead {
			s.mu.Unlock()
			continue
		}
		p := c.st.add(last)
		st := c.st
		b.Ack = func(err error) { s.ack(st, p, err) }
		s.queue = append(s.queue, queued{b: b, st: st, p: p})
		s.mu.Unlock()
	}
	return fatal
}

// encode builds the batch for records of one partition, with one buffer for
// all payloads and one for all headers.
func (s *Source) encode(st *partState, recs []*kgo.Record) component.Batch {
	meta := s.enc.meta(st.topic)
	size, nh := 0, 0
	for _, r := range recs {
		size += s.enc.sizeHint(meta, r)
		nh += len(r.Headers)
	}
	buf := make([]byte, 0, size)
	var hdrs []message.Header
	if nh > 0 {
		hdrs = make([]message.Header, 0, nh)
	}
	msgs := make([]message.Message, len(recs))
	nonJSON := 0
	for i, r := range recs {
		start := len(buf)
		var bad bool
		buf, bad = s.enc.appendEvent(buf, meta, r)
		if bad {
			nonJSON++
		}
		m := &msgs[i]
		m.Payload = buf[start:len(buf):len(buf)]
		m.Event = m.Payload
		m.Key = r.Key
		m.Time = r.Timestamp
		m.Pos = message.Position{Stream: st.topic, Partition: st.part, Offset: r.Offset}
		if len(r.Headers) > 0 {
			hs := len(hdrs)
			for _, h := range r.Headers {
				hdrs = append(hdrs, message.Header{Key: h.Key, Value: h.Value})
			}
			m.Headers = hdrs[hs:len(hdrs):len(hdrs)]
		}
		if s.maxEvent > 0 && len(m.Payload) > s.maxEvent {
			m.Err = fmt.Errorf("event of %d bytes from %s exceeds the %d-byte event limit (max_event_size)", len(m.Payload), m.Pos, s.maxEvent)
			m.Payload, m.Event = r.Value, r.Value
		}
	}
	s.m.records.Add(float64(len(recs)))
	if nonJSON > 0 {
		s.m.nonJSON.Add(float64(nonJSON))
	}
	return component.Batch{Messages: msgs, Lane: st.lane}
}

// ack is a batch's Ack: it advances the partition's committable offset and
// hands it to the client, which commits it on its timer.
func (s *Source) ack(st *partState, p *pending, err error) {
	s.mu.Lock()
	moved := st.ack(p, err)
	mark := st.mark
	cl := s.cl
	if s.waiters > 0 {
		close(s.ackCh)
		s.ackCh = make(chan struct{})
	}
	s.mu.Unlock()
	if moved && cl != nil {
		cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{st.topic: {st.part: mark}})
	}
}

func (s *Source) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	var newTopics []string
	for topic, parts := range assigned {
		if !s.assigned[topic] {
			s.assigned[topic] = true
			newTopics = append(newTopics, topic)
		}
		for _, p := range parts {
			k := tp{topic, p}
			s.parts[k] = &partState{tp: k, lane: topic + "/" + strconv.Itoa(int(p))}
		}
	}
	paused := s.paused
	s.mu.Unlock()
	if paused && len(newTopics) > 0 {
		cl.PauseFetchTopics(newTopics...)
	}
	s.log.Debug().Interface("partitions", assigned).Msg("partitions assigned")
}

// onRevoked gives partitions up cleanly: forget what was polled but not
// handed out, wait (up to revoke_timeout) for the engine to finish the
// batches in flight, commit what is done, and stop tracking.
func (s *Source) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	var states []*partState
	for topic, parts := range revoked {
		for _, p := range parts {
			if st := s.parts[tp{topic, p}]; st != nil {
				states = append(states, st)
			}
		}
	}
	s.dropQueuedLocked(states)
	wait := !s.closing
	s.mu.Unlock()
	if wait {
		s.awaitInFlight(ctx, states)
	}
	s.mu.Lock()
	for _, st := range states {
		st.dead = true
		delete(s.parts, st.tp)
		s.m.lag.DeleteLabelValues(st.topic, strconv.Itoa(int(st.part)))
	}
	s.mu.Unlock()
	s.commit(ctx, cl, "partitions revoked")
	s.log.Debug().Interface("partitions", revoked).Msg("partitions revoked")
}

// onLost drops partitions the group took away without a clean revoke (a
// missed heartbeat): committing is pointless, another member owns them.
func (s *Source) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	var states []*partState
	for topic, parts := range lost {
		for _, p := range parts {
			if st := s.parts[tp{topic, p}]; st != nil {
				states = append(states, st)
			}
		}
	}
	s.dropQueuedLocked(states)
	for _, st := range states {
		st.dead = true
		delete(s.parts, st.tp)
		s.m.lag.DeleteLabelValues(st.topic, strconv.Itoa(int(st.part)))
	}
	s.mu.Unlock()
	if len(lost) > 0 {
		s.log.Warn().Interface("partitions", lost).Msg("partitions lost (missed heartbeats or a fatal group error); their uncommitted records will be read again by their new owner")
	}
}

// dropQueuedLocked removes queued batches of states from the queue.
func (s *Source) dropQueuedLocked(states []*partState) {
	if len(states) == 0 {
		return
	}
	gone := make(map[*partState]bool, len(states))
	for _, st := range states {
		gone[st] = true
		st.dropQueued()
	}
	q := s.queue[:0]
	for _, e := range s.queue {
		if !gone[e.st] {
			q = append(q, e)
		}
	}
	clear(s.queue[len(q):])
	s.queue = q
}

// awaitInFlight waits until no batch of states is in flight, or
// revoke_timeout passes, or ctx ends.
func (s *Source) awaitInFlight(ctx context.Context, states []*partState) {
	if len(states) == 0 {
		return
	}
	timer := time.NewTimer(s.cfg.RevokeTimeout.D())
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiters++
	if s.ackCh == nil {
		s.ackCh = make(chan struct{})
	}
	defer func() { s.waiters-- }()
	for {
		busy := false
		for _, st := range states {
			if st.inFlight() {
				busy = true
				break
			}
		}
		if !busy || s.closing {
			return
		}
		ch := s.ackCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.mu.Lock()
			s.log.Warn().Dur("revoke_timeout", s.cfg.RevokeTimeout.D()).Msg("rebalance: batches still in flight; committing what is done, the rest is read again by the new owner")
			return
		case <-ctx.Done():
			s.mu.Lock()
			return
		}
		s.mu.Lock()
	}
}

// commit commits the marked offsets synchronously.
func (s *Source) commit(ctx context.Context, cl *kgo.Client, why string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		s.m.commitE.Inc()
		s.log.Warn().Err(err).Str("why", why).Msg("offset commit failed; records after the last committed offset will be read again")
	}
}

func (s *Source) onAutoCommit(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					err = fmt.Errorf("topic %q partition %d: error code %d", t.Topic, p.Partition, p.ErrorCode)
				}
			}
		}
	}
	if err != nil {
		s.m.commitE.Inc()
		s.log.Warn().Err(err).Msg("periodic offset commit failed; the next one retries")
	}
}

// Pause stops fetching; the member stays in its group and keeps its
// partitions, and batches already read are still handed out.
func (s *Source) Pause() {
	s.mu.Lock()
	s.paused = true
	cl := s.cl
	topics := make([]string, 0, len(s.assigned)+len(s.cfg.Topics))
	topics = append(topics, s.cfg.Topics...)
	for t := range s.assigned {
		topics = append(topics, t)
	}
	s.mu.Unlock()
	if cl != nil && len(topics) > 0 {
		cl.PauseFetchTopics(topics...)
	}
}

// Resume undoes Pause.
func (s *Source) Resume() {
	s.mu.Lock()
	s.paused = false
	cl := s.cl
	s.mu.Unlock()
	if cl != nil {
		cl.ResumeFetchTopics(cl.PauseFetchTopics()...)
	}
}

// Close commits the acknowledged offsets, leaves the group and releases
// the client. It unblocks a pending Read. It is safe without Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	cl := s.cl
	if s.waiters > 0 {
		close(s.ackCh)
		s.ackCh = make(chan struct{})
	}
	s.mu.Unlock()
	var err error
	if cl != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if cerr := cl.CommitMarkedOffsets(cctx); cerr != nil {
			s.m.commitE.Inc()
			err = fmt.Errorf("close kafka source: commit offsets of group %q: %w", s.group, cerr)
		}
		cancel()
		// Leaving runs onRevoked, which commits once more (nothing new)
		// without waiting: the engine has finished by now.
		cl.Close()
	}
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	return err
}

// commitTimer observes the time of each OffsetCommit request.
type commitTimer struct{ h prometheus.Observer }

func (c commitTimer) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == kmsg.OffsetCommit.Int16() && e2e.Err() == nil {
		c.h.Observe(e2e.DurationE2E().Seconds())
	}
}
