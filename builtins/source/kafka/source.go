package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
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
			"delivered, filtered or dead-lettered (at-least-once), or inside the task's transactions with `exactly_once = true` " +
			"and a Kafka sink. See docs/kafka.md.",
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

// Source is the kafka source. Besides component.Source it implements
// component.Pauser (fetching stops, the member stays in its group),
// component.Rewinder (read again what was not acknowledged) and
// component.Cycler (exactly-once transactions).
type Source struct {
	cfg      *Config
	log      zerolog.Logger
	opts     []kgo.Opt
	group    string
	enc      *encoder
	maxEvent int
	// maxBatch is the most bytes a fetched batch may decompress to; dec
	// (made at Open) enforces it.
	maxBatch int
	dec      *kafkaconf.BatchDecompressor
	m        sourceMetrics
	// window is the most records handed out and not committed that Read
	// allows (at-least-once): it bounds what a crash reads again. 0: no
	// bound.
	window int

	// Exactly-once: the task's shared transactional session.
	eos   bool
	txn   *kafkaconf.Txn
	txnID string

	// extra are options appended last; tests use them to shorten timers.
	extra []kgo.Opt

	cl   *kgo.Client
	sess *kgo.GroupTransactSession // exactly-once; cl is its client

	// commitMu orders commits (commit.go): a commit takes its offsets and
	// sends them before another commit takes its own, so that the group's
	// offsets never go back (the committer and a revoke both commit).
	commitMu sync.Mutex
	// beforeSend, when set (tests), runs in commit between taking the
	// offsets and sending them.
	beforeSend func(why string)

	mu       sync.Mutex
	parts    map[tp]*partState
	queue    []queued
	closing  bool
	closed   bool
	paused   bool
	assigned map[string]bool // topics with assigned partitions
	changed  chan struct{}   // closed and replaced on every ack, commit and state change
	handed   int             // records handed out and not committed
	acked    int             // of them, acknowledged
	kick     chan struct{}   // asks the committer for a commit now
	stop     context.CancelFunc
	stopped  chan struct{} // closed when the committer ended

	// Exactly-once cycle state, guarded by mu.
	inTxn     bool
	txnStart  time.Time
	abortSoon bool // the open transaction cannot commit (nack, rebalance)
	unended   bool // ending the last transaction failed: abort it before the next
	// unconfirmed holds the offsets of a commit whose outcome is unknown
	// (its EndTxn got no answer): before the next transaction, the group's
	// offsets on the brokers tell whether it committed.
	unconfirmed map[string]map[int32]kgo.EpochOffset
	// recommit holds offsets committed by such a transaction, which the
	// client does not know as committed: it would rewind to its older view
	// on an abort, so they are set again after one, and committed again in
	// the next transaction (which teaches the client).
	recommit   map[tp]kgo.EpochOffset
	abortErr   error // the first failure of the open transaction
	retryAt    time.Time
	backoff    time.Duration
	pollCancel context.CancelFunc
}

type queued struct {
	b  component.Batch
	st *partState
	p  *pending
}

type sourceMetrics struct {
	records     metrics.Counter
	nonJSON     metrics.Counter
	lag         *metrics.GaugeVec // topic, partition
	commit      metrics.Observer
	commitE     metrics.Counter
	uncommitted metrics.Gauge
	txns        *metrics.CounterVec // outcome
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
		maxBatch: kafkaconf.DecompressLimit(int64(cfg.MaxDecompressedBatch), env.MaxEvent),
		parts:    map[tp]*partState{},
		assigned: map[string]bool{},
		changed:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
	}
	if s.group == "" {
		s.group = "sluice-" + env.Task
	}
	if env.ExactlyOnce {
		s.eos = true
		if s.txn, err = kafkaconf.SharedTxn(env.Shared, env.Task); err != nil {
			return nil, err
		}
		s.txnID = cfg.TransactionalID
		if s.txnID == "" {
			s.txnID = defaultTxnID(s.group, cfg.InstanceID)
		}
	} else if env.MaxInFlight > 0 {
		// In 64 bits: on a 32-bit platform the product of the two
		// bounds (4096 x 1,000,000) wrapped negative, which reads as no
		// window at all.
		s.window = int(min(2*int64(env.MaxInFlight)*int64(cfg.MaxPollRecords), math.MaxInt))
	}
	s.m = newMetrics(env)
	return s, nil
}

// defaultTxnID is the transactional id of a member: stable with static
// membership, so that a restarted member fences its crashed predecessor's
// transaction at once; unique otherwise, so that members never fence each
// other.
func defaultTxnID(group, instance string) string {
	if instance != "" {
		return group + "-" + instance
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return group + "-" + hex.EncodeToString(b[:])
}

func newMetrics(env component.Env) sourceMetrics {
	lbl := env.Task
	ms := env.Metrics
	return sourceMetrics{
		records:     ms.Counter("kafka_consumer_records_total", "Records read from Kafka.", "task").WithLabelValues(lbl),
		nonJSON:     ms.Counter("kafka_value_not_json_total", "Record values that value_format = \"json\" could not parse and kept as a string.", "task").WithLabelValues(lbl),
		lag:         ms.Gauge("kafka_consumer_lag", "Records between the last one read and the partition's high watermark.", "task", "topic", "partition").Curry(lbl),
		commit:      ms.Histogram("kafka_consumer_commit_seconds", "Time of one offset commit (with exactly_once: of ending one transaction).", nil, "task").WithLabelValues(lbl),
		commitE:     ms.Counter("kafka_consumer_commit_errors_total", "Offset commits (or transactions) that failed.", "task").WithLabelValues(lbl),
		uncommitted: ms.Gauge("kafka_consumer_uncommitted_records", "Records handed to the task and not committed yet: what a crash would read again.", "task").WithLabelValues(lbl),
		txns:        ms.Counter("kafka_transactions_total", "Exactly-once transactions ended, by outcome (committed, aborted).", "task", "outcome").Curry(lbl),
	}
}

// Group returns the consumer group the source joins.
func (s *Source) Group() string { return s.group }

// consumerOptions returns the options of the consuming client.
func (s *Source) consumerOptions() []kgo.Opt {
	cfg := s.cfg
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
	if cfg.IsolationLevel == "read_committed" || s.eos {
		iso = kgo.ReadCommitted()
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeStartOffset(start),
		kgo.Balancers(balancer),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxBytes(int32(cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(cfg.FetchMaxPartitionBytes)),
		kgo.FetchMinBytes(int32(cfg.FetchMinBytes)),
		kgo.FetchMaxWait(cfg.FetchMaxWait.D()),
		// fetch_max_bytes counts compressed bytes: without its own bound a
		// batch of a few KiB would decompress to up to 1 GiB.
		kgo.WithDecompressor(s.dec),
		kgo.WithHooks(s.dec),
		kgo.SessionTimeout(cfg.SessionTimeout.D()),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout.D()),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval.D()),
		// The source commits itself (commit.go, or inside transactions),
		// exactly the offsets the engine acknowledged, and never across a
		// rebalance: polls and the partition callbacks gate each other,
		// and Read allows rebalances again right after it has registered
		// what it polled.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.TopicsRegex != "" {
		opts = append(opts, kgo.ConsumeTopics(cfg.TopicsRegex), kgo.ConsumeRegex())
	} else {
		opts = append(opts, kgo.ConsumeTopics(cfg.Topics...))
	}
	return opts
}

// Open connects, checks that the brokers accept the credentials and that
// the configured topics exist, and starts consuming. Under exactly_once it
// opens the task's transactional session, producing with the settings the
// Kafka sink registered.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.cl != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
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
	if s.dec, err = kafkaconf.NewBatchDecompressor(s.maxBatch); err != nil {
		return component.TaskPermanent(fmt.Errorf("open kafka source: %w", err))
	}
	opts := append(slices.Clone(s.opts), s.consumerOptions()...)
	var cl *kgo.Client
	var sess *kgo.GroupTransactSession
	if s.eos {
		producer, _ := s.txn.Producer()
		if producer == nil {
			return component.TaskPermanent(errors.New("open kafka source: exactly_once needs a kafka sink, and none registered its producer settings"))
		}
		opts = append(opts, producer...)
		opts = append(opts, kgo.TransactionalID(s.txnID), kgo.TransactionTimeout(s.cfg.TransactionTimeout.D()))
		opts = append(opts, s.extra...)
		if sess, err = kgo.NewGroupTransactSession(opts...); err != nil {
			return component.TaskPermanent(fmt.Errorf("open kafka source: %w", err))
		}
		cl = sess.Client()
	} else {
		opts = append(opts, s.extra...)
		if cl, err = kgo.NewClient(opts...); err != nil {
			return component.TaskPermanent(fmt.Errorf("open kafka source: %w", err))
		}
	}
	s.mu.Lock()
	s.cl, s.sess = cl, sess
	s.mu.Unlock()
	if s.eos {
		s.txn.SetSession(sess)
		s.log.Info().Str("group", s.group).Strs("brokers", s.cfg.Brokers).Str("transactional_id", s.txnID).Msg("kafka source connected (exactly-once)")
		return nil
	}
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.stopped = stop, make(chan struct{})
	go s.committer(cctx, cl, s.stopped)
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

// notifyLocked wakes everything waiting for a state change.
func (s *Source) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Read returns the next batch: the records polled from one partition,
// in offset order. It blocks until records arrive or ctx ends, and while
// the records handed out and not committed fill the window. Under
// exactly_once it begins a transaction before handing out the first batch
// of a cycle, and returns an empty batch once the cycle is due and no
// records came, so that the engine can end it.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return component.Batch{}, ErrClosed
		}
		cl := s.cl
		if cl == nil {
			s.mu.Unlock()
			return component.Batch{}, errors.New("kafka source: Read before Open")
		}
		if s.eos {
			if s.inTxn && s.abortSoon {
				// Handing out more would only add to what aborts.
				s.mu.Unlock()
				return component.Batch{}, nil
			}
			if wait := time.Until(s.retryAt); wait > 0 && !s.inTxn {
				ch := s.changed
				s.mu.Unlock()
				if err := sleep(ctx, wait, ch); err != nil {
					return component.Batch{}, err
				}
				continue
			}
		}
		if len(s.queue) > 0 {
			q := s.queue[0]
			if s.window > 0 && s.handed > 0 && s.handed+q.p.n > s.window {
				// The window is full of records not committed yet: have
				// them committed before handing out more.
				ch := s.changed
				s.mu.Unlock()
				s.commitNow()
				select {
				case <-ch:
				case <-ctx.Done():
					return component.Batch{}, ctx.Err()
				}
				continue
			}
			if s.eos && !s.inTxn {
				s.mu.Unlock()
				if err := s.begin(ctx); err != nil {
					return component.Batch{}, err
				}
				continue
			}
			s.queue[0] = queued{}
			s.queue = s.queue[1:]
			q.p.handed = true
			s.handed += q.p.n
			s.m.uncommitted.Set(float64(s.handed))
			s.mu.Unlock()
			return q.b, nil
		}
		if s.eos && !s.inTxn && s.unsettledLocked() {
			s.mu.Unlock()
			if err := s.settle(ctx); err != nil {
				return component.Batch{}, err
			}
			continue
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		cycleDue := false
		if s.eos && s.inTxn {
			// Wake up when the cycle is due, or when it must abort.
			due := s.txnStart.Add(s.cfg.CommitInterval.D())
			pctx, cancel = context.WithDeadline(ctx, due)
			s.pollCancel = cancel
		}
		s.mu.Unlock()
		fs := cl.PollRecords(pctx, s.cfg.MaxPollRecords)
		err := s.take(cl, fs)
		cl.AllowRebalance()
		if s.eos {
			s.mu.Lock()
			s.pollCancel = nil
			cycleDue = s.inTxn && (s.abortSoon || !time.Now().Before(s.txnStart.Add(s.cfg.CommitInterval.D())))
			empty := len(s.queue) == 0
			s.mu.Unlock()
			cancel()
			if cycleDue && empty && err == nil && ctx.Err() == nil {
				return component.Batch{}, nil
			}
		}
		if err != nil {
			return component.Batch{}, err
		}
		if ctx.Err() != nil {
			return component.Batch{}, ctx.Err()
		}
	}
}

// sleep waits d, or until ctx ends or wake is closed.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// take turns a poll into queued batches, one per partition. It runs while
// rebalances are blocked, so the partitions it sees are still ours.
func (s *Source) take(cl *kgo.Client, fs kgo.Fetches) error {
	var fatal error
	var skipped []*kgo.ErrDecompressTooLarge
	for _, fe := range fs.Errors() {
		var tooLarge *kgo.ErrDecompressTooLarge
		switch {
		case errors.As(fe.Err, &tooLarge):
			// franz-go stops the partition at this batch until it is
			// moved past: the batch becomes a failed event of its own.
			skipped = append(skipped, tooLarge)
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
		lag := int64(-1)
		if c.fp.HighWatermark >= 0 {
			lag = max(0, c.fp.HighWatermark-last.Offset-1)
			s.m.lag.WithLabelValues(c.st.topic, strconv.Itoa(int(c.st.part))).Set(float64(lag))
		}
		s.mu.Lock()
		if lag >= 0 {
			c.st.lag, c.st.lagKnown = lag, true
		}
		if c.st.dead {
			s.mu.Unlock()
			continue
		}
		p := c.st.add(c.fp.Records)
		st := c.st
		b.Ack = func(err error) { s.ack(st, p, err) }
		s.queue = append(s.queue, queued{b: b, st: st, p: p})
		s.mu.Unlock()
	}
	s.skip(cl, skipped)
	return fatal
}

// skip queues, for each batch that could not be decompressed, one failed
// event covering its offsets, after what this poll read of its partition,
// and moves the partition past it. The engine dead-letters the event with
// the reason; the batch's offsets are committed once it is acknowledged,
// in order with the partition's other batches, like any record's. A
// rewind, or an aborted transaction, reads the batch again: it fails
// again the same way.
func (s *Source) skip(cl *kgo.Client, batches []*kgo.ErrDecompressTooLarge) {
	if len(batches) == 0 {
		return
	}
	past := map[string]map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	for _, e := range batches {
		cause := s.dec.Cause(e.Topic, e.Partition)
		st := s.parts[tp{e.Topic, e.Partition}]
		if st == nil || st.dead {
			continue // no longer ours: the new owner meets it
		}
		first := kgo.EpochOffset{Epoch: e.Epoch, Offset: e.Offset}
		next := kgo.EpochOffset{Epoch: e.Epoch, Offset: e.NextOffset}
		pos := message.Position{Stream: st.topic, Partition: st.part, Offset: e.Offset}
		last := message.Position{Stream: st.topic, Partition: st.part, Offset: e.NextOffset - 1}
		var err error
		if cause != nil {
			err = fmt.Errorf("records %s to %s: their record batch cannot be decompressed (%w), so they are skipped", pos, last, cause)
		} else {
			err = fmt.Errorf("records %s to %s: their record batch decompresses to more than %d bytes, so they are skipped; "+
				"to read them, raise max_decompressed_batch_bytes and set the group's offset of topic %q partition %d back to %d",
				pos, last, s.maxBatch, st.topic, st.part, e.Offset)
		}
		p := st.addRange(first, next, 1)
		b := component.Batch{Messages: []message.Message{{Pos: pos, Err: err, Time: time.Now()}}, Lane: st.lane}
		b.Ack = func(err error) { s.ack(st, p, err) }
		s.queue = append(s.queue, queued{b: b, st: st, p: p})
		if past[st.topic] == nil {
			past[st.topic] = map[int32]kgo.EpochOffset{}
		}
		past[st.topic][st.part] = next
		s.log.Warn().Err(err).Str("topic", st.topic).Int32(logx.Partition, st.part).Msg("record batch skipped; it goes to the dead-letter queue")
	}
	s.mu.Unlock()
	// Before AllowRebalance, as franz-go asks: the partitions are ours.
	cl.SetOffsets(past)
}

// encode builds the batch for records of one partition, with one buffer for
// all payloads and one for all headers.
func (s *Source) encode(st *partState, recs []*kgo.Record) component.Batch {
	meta := s.enc.meta(st.topic)
	size, nh := 0, 0
	var refused []bool // records refused without being encoded; nil: none
	for i, r := range recs {
		hint := s.enc.sizeHint(meta, r)
		// The hint is never below the event's least size: only a large
		// hint needs a closer look.
		nh += len(r.Headers)
		if s.maxEvent > 0 && hint > s.maxEvent && s.enc.minSize(meta, r) > s.maxEvent {
			if refused == nil {
				refused = make([]bool, len(recs))
			}
			refused[i] = true
			continue
		}
		size += hint
	}
	buf := make([]byte, 0, size)
	var hdrs []message.Header
	if nh > 0 {
		hdrs = make([]message.Header, 0, nh)
	}
	msgs := make([]message.Message, len(recs))
	nonJSON := 0
	for i, r := range recs {
		m := &msgs[i]
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
		if refused != nil && refused[i] {
			// Encoding it would only cost memory: up to 6 times the value
			// (a NUL byte is written \u0000).
			m.Err = fmt.Errorf("event of at least %d bytes from %s exceeds the %d-byte event limit (max_event_size)", s.enc.minSize(meta, r), m.Pos, s.maxEvent)
			m.Payload, m.Event = r.Value, r.Value
			continue
		}
		start := len(buf)
		var bad bool
		buf, bad = s.enc.appendEvent(buf, meta, r)
		if bad {
			nonJSON++
		}
		m.Payload = buf[start:len(buf):len(buf)]
		m.Event = m.Payload
		if s.maxEvent > 0 && len(m.Payload) > s.maxEvent {
			m.Err = fmt.Errorf("event of %d bytes from %s exceeds the %d-byte event limit (max_event_size)", len(m.Payload), m.Pos, s.maxEvent)
			m.Payload, m.Event = r.Value, r.Value
			buf = buf[:start] // the next events reuse its room
		}
	}
	s.m.records.Add(uint64(len(recs)))
	if nonJSON > 0 {
		s.m.nonJSON.Add(uint64(nonJSON))
	}
	return component.Batch{Messages: msgs, Lane: st.lane}
}

// ack is a batch's Ack: it advances the partition's acknowledged prefix.
// At-least-once, the committer commits it (at once when enough records
// wait); under exactly_once the transaction does, and a nack dooms the
// open transaction.
func (s *Source) ack(st *partState, p *pending, err error) {
	s.mu.Lock()
	grew := st.ack(p, err)
	if st.dead {
		s.mu.Unlock()
		return
	}
	s.acked += grew
	kick := s.window > 0 && s.acked >= s.window/2
	if err != nil && s.eos && s.inTxn {
		if s.abortErr == nil {
			s.abortErr = err
		}
		s.abortSoonLocked()
	}
	s.notifyLocked()
	s.mu.Unlock()
	if kick {
		s.commitNow()
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
			s.parts[k] = newPartState(k, topic+"/"+strconv.Itoa(int(p)))
		}
	}
	paused := s.paused
	s.mu.Unlock()
	if paused && len(newTopics) > 0 {
		cl.PauseFetchTopics(newTopics...)
	}
	s.log.Debug().Interface("partitions", assigned).Msg("partitions assigned")
}

// statesLocked returns the states of the partitions named in m.
func (s *Source) statesLocked(m map[string][]int32) []*partState {
	var states []*partState
	for topic, parts := range m {
		for _, p := range parts {
			if st := s.parts[tp{topic, p}]; st != nil {
				states = append(states, st)
			}
		}
	}
	return states
}

// forgetLocked stops tracking states: their partitions are no longer ours.
func (s *Source) forgetLocked(states []*partState) {
	for _, st := range states {
		h, a := st.counts()
		s.handed -= h
		s.acked -= a
		st.dead = true
		delete(s.parts, st.tp)
		delete(s.recommit, st.tp)
		s.m.lag.Delete(st.topic, strconv.Itoa(int(st.part)))
	}
	s.m.uncommitted.Set(float64(s.handed))
	s.notifyLocked()
}

// onRevoked gives partitions up cleanly: forget what was polled but not
// handed out, wait (up to revoke_timeout) for the engine to finish the
// batches in flight, commit what is done, and stop tracking. Under
// exactly_once the session aborts the open transaction instead, so there
// is nothing to wait for or commit: the new owner reads from the last
// committed transaction.
func (s *Source) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	states := s.statesLocked(revoked)
	s.dropQueuedLocked(states)
	if s.eos {
		s.forgetLocked(states)
		if s.inTxn && len(states) > 0 {
			s.abortSoonLocked()
		}
		s.mu.Unlock()
		s.log.Debug().Interface("partitions", revoked).Msg("partitions revoked")
		return
	}
	wait := !s.closing
	s.mu.Unlock()
	if wait {
		s.awaitInFlight(ctx, states)
	}
	s.commit(ctx, cl, states, "partitions revoked")
	s.mu.Lock()
	s.forgetLocked(states)
	s.mu.Unlock()
	s.log.Debug().Interface("partitions", revoked).Msg("partitions revoked")
}

// onLost drops partitions the group took away without a clean revoke (a
// missed heartbeat): committing is pointless, another member owns them.
func (s *Source) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	states := s.statesLocked(lost)
	s.dropQueuedLocked(states)
	s.forgetLocked(states)
	if s.eos && s.inTxn && len(states) > 0 {
		s.abortSoonLocked()
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
		ch := s.changed
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

// Rewind makes the source read again, in place, every record not
// acknowledged: each partition goes back to the end of its acknowledged
// prefix (or to the first record read since the last commit), and what
// was polled but not handed out is forgotten. The engine calls it, with no
// Read in progress, when an admin resumes a blocked task. Under
// exactly_once the engine has aborted the last transaction already, which
// rewound the partitions to the last committed transaction.
func (s *Source) Rewind(ctx context.Context) error {
	s.mu.Lock()
	cl := s.cl
	if cl == nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.eos {
		inTxn := s.inTxn
		s.mu.Unlock()
		if inTxn {
			if err := s.EndCycle(ctx, false); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.retryAt, s.backoff = time.Time{}, 0
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// A poll with a canceled context registers as a poller, which holds
	// rebalances off until AllowRebalance: no revoke can run between
	// choosing the offsets and setting them.
	done, cancel := context.WithCancel(ctx)
	cancel()
	cl.PollRecords(done, 1)
	defer cl.AllowRebalance()
	s.mu.Lock()
	set := map[string]map[int32]kgo.EpochOffset{}
	for _, st := range s.parts {
		h, a := st.counts()
		s.handed -= h
		s.acked -= a
		at, ok := st.rewindTo()
		if !ok {
			continue
		}
		if set[st.topic] == nil {
			set[st.topic] = map[int32]kgo.EpochOffset{}
		}
		// The acknowledged prefix (mark) stays committable.
		set[st.topic][st.part] = at
	}
	clear(s.queue)
	s.queue = s.queue[:0]
	s.m.uncommitted.Set(float64(s.handed))
	s.notifyLocked()
	s.mu.Unlock()
	if len(set) > 0 {
		cl.SetOffsets(set)
		s.log.Info().Interface("offsets", set).Msg("rewound to the last acknowledged records")
	}
	return nil
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
	cl, sess, inTxn := s.cl, s.sess, s.inTxn
	s.notifyLocked()
	s.mu.Unlock()
	var err error
	switch {
	case sess != nil:
		if inTxn {
			// The engine ends the last cycle before closing; a transaction
			// still open here was not acknowledged in full.
			_ = s.EndCycle(ctx, false)
		}
		s.txn.SetSession(nil)
		sess.Close()
	case cl != nil:
		s.stop()
		<-s.stopped
		if cerr := s.commit(ctx, cl, nil, "closing"); cerr != nil {
			err = fmt.Errorf("close kafka source: commit offsets of group %q: %w", s.group, cerr)
		}
		// Leaving runs onRevoked, which commits once more (nothing new)
		// without waiting: the engine has finished by now.
		cl.Close()
	}
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.notifyLocked()
	s.mu.Unlock()
	return err
}
