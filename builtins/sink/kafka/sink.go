package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Register adds the kafka sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "kafka",
		Summary: "Produce records to a Kafka topic (idempotent, acks=all); topic, key and headers may be templates.",
		Description: "Writes each record's payload as the value of a Kafka record. `topic`, `key`, `headers` and `partition` " +
			"may be templates over the original source event. Write returns once the brokers acknowledged every record; " +
			"a record the brokers reject (too large, invalid) goes to the dead-letter queue, a missing topic or refused " +
			"credentials stop the task, other failures are retried. As a dead-letter sink it keeps the original event as " +
			"the value and the failure details in sluice-* headers. See docs/kafka.md.",
		Example: `[sink]
type = "kafka"
brokers = ["127.0.0.1:9092"]
topic = "orders-${region}"
key = "${order}"
variables = { region = "$.data.value.region", order = "$.data.value.order_id" }
`,
		New:   newConfig,
		Build: build,
	})
}

// Sink is the kafka sink.
type Sink struct {
	cfg  *Config
	log  zerolog.Logger
	opts []kgo.Opt
	tpl  *templates
	m    sinkMetrics
	// manual partitions records by their Partition field and remembers
	// those out of range, to fail them as event-permanent.
	manual *manualPartitioner

	// extra are options appended last; tests use them to shorten timers.
	extra []kgo.Opt

	// Exactly-once: records go through the task's transactional session,
	// which the Kafka source opens and closes.
	txn *kafkaconf.Txn

	mu     sync.Mutex
	cl     *kgo.Client
	alone  *kgo.Client // sends rejected records again one by one; made when first needed
	closed bool
}

type sinkMetrics struct {
	records metrics.Counter
	errors  *metrics.CounterVec // error_type
	latency metrics.Observer
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	tpl, ok := cfg.compile(nil, env.MaxEvent)
	if !ok {
		return nil, errors.New("kafka sink: invalid templates") // Validate reported the details
	}
	conn := kafkaconf.Conn{Brokers: cfg.Brokers, ClientID: cfg.ClientID, SASL: cfg.SASL, TLS: cfg.TLS, DialTimeout: cfg.DialTimeout.D()}
	opts, err := conn.Options(env.Dir, env.Logger)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, log: env.Logger, opts: opts, tpl: tpl, manual: &manualPartitioner{}}
	if env.Problems != nil {
		if base := env.Problems.Base(); len(base) > 0 && base[0] == "dead_letter" {
			// A replay of the topic connects as this sink does.
			kafkaconf.ShareDeadLetter(env.Shared, env.Task, tpl.fixedTopic, cfg.Brokers, opts)
			warnSmallDeadLetter(env.Logger, cfg.BatchMaxBytes.Int(), env.MaxEvent)
		}
	}
	if env.ExactlyOnce {
		if s.txn, err = kafkaconf.SharedTxn(env.Shared, env.Task); err != nil {
			return nil, err
		}
		// The task's sink sets the producer of the shared session; a
		// dead-letter sink (built after it) writes through that producer.
		if base := env.Problems.Base(); len(base) == 0 || base[0] != "dead_letter" {
			s.txn.SetProducer(s.producerOptions(), s.manual)
		}
		s.txn.NeedBatchBytes(int32(cfg.BatchMaxBytes))
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sinkMetrics{
		records: ms.Counter("kafka_producer_records_total", "Records the brokers acknowledged.", "task").WithLabelValues(lbl),
		errors:  ms.Counter("kafka_producer_errors_total", "Records that failed to produce, by error class.", "task", "error_type").Curry(lbl),
		latency: ms.Histogram("kafka_produce_seconds", "Time for one Write, from the first record handed to the client to the last acknowledgement.", nil, "task").WithLabelValues(lbl),
	}
	return s, nil
}

// warnSmallDeadLetter warns, when the task is loaded, that a Kafka
// dead-letter queue whose batch_max_bytes is below the task's
// max_event_size cannot take every event the task accepts: one between the
// two is refused (MESSAGE_TOO_LARGE) and, as a dead-letter queue that
// refuses a record does, stops the task in Blocked (docs/delivery.md). A
// warning, not a refusal: the defaults (1000012 bytes, Kafka's
// max.message.bytes, and 1 MiB) are in this case, and most events are far
// smaller than either limit.
func warnSmallDeadLetter(log zerolog.Logger, batchMax, maxEvent int) {
	if maxEvent <= 0 || batchMax >= maxEvent {
		return
	}
	log.Warn().Int("batch_max_bytes", batchMax).Int("max_event_size", maxEvent).
		Msgf("the kafka dead-letter queue's batch_max_bytes (%d) is below the task's max_event_size (%d): an event between the two cannot be dead-lettered, "+
			"and a failed one blocks the task (state Blocked) instead; raise [dead_letter] batch_max_bytes above max_event_size, with a few KiB for the failure headers "+
			"(and the topic's max.message.bytes with it), or lower max_event_size", batchMax, maxEvent)
}

// DeadLetterRaw tells the engine that, as a dead-letter sink, this sink
// keeps the original event bytes as the record value and the failure
// details as headers (docs/delivery.md).
func (s *Sink) DeadLetterRaw() bool { return true }

func (s *Sink) clientOptions() []kgo.Opt {
	return append(slices.Clone(s.opts), s.producerOptions()...)
}

// producerOptions are the producing part of the client options (what an
// exactly-once session takes from the sink).
func (s *Sink) producerOptions() []kgo.Opt {
	cfg := s.cfg
	var opts []kgo.Opt
	var part kgo.Partitioner
	switch cfg.Partitioner {
	case "round_robin":
		part = kgo.RoundRobinPartitioner()
	case "manual":
		part = s.manual
	default:
		// nil hasher: Kafka's murmur2, so keys land where the Java
		// producer puts them.
		part = kgo.StickyKeyPartitioner(nil)
	}
	var codec kgo.CompressionCodec
	switch cfg.Compression {
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		codec = kgo.NoCompression()
	}
	acks := kgo.AllISRAcks()
	switch cfg.Acks {
	case "leader":
		acks = kgo.LeaderAck()
	case "none":
		acks = kgo.NoAck()
	}
	opts = append(opts,
		kgo.RecordPartitioner(part),
		kgo.ProducerBatchCompression(codec),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchMaxBytes(int32(cfg.BatchMaxBytes)),
		kgo.ProducerLinger(cfg.Linger.D()),
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
	)
	if !cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(cfg.MaxInFlight))
	}
	if cfg.DeliveryTimeout > 0 && cfg.Idempotent && s.txn == nil {
		// A bounded Write needs in-flight records to be given up too; the
		// cost is a possible duplicate, within at-least-once. The bound
		// itself is the context of each Write: franz-go's own record
		// timeout counts from the record timestamp, which is the source's.
		// A transactional producer cannot give up records in flight; it
		// does not need to, since a failed transaction aborts whole.
		opts = append(opts, kgo.AllowIdempotentProduceCancellation())
	}
	if cfg.AutoCreateTopics {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	return append(opts, s.extra...)
}

// Open connects and checks the credentials and, for a fixed topic, that it
// exists.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.cl != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if s.txn != nil {
		// Check the brokers and the topic with a throwaway client; the
		// writes go through the session the source opens.
		opts := slices.Clone(s.opts)
		if s.cfg.AutoCreateTopics {
			opts = append(opts, kgo.AllowAutoTopicCreation())
		}
		probe, err := kgo.NewClient(opts...)
		if err != nil {
			return component.TaskPermanent(fmt.Errorf("open kafka sink: %w", err))
		}
		err = s.probe(ctx, kadm.NewClient(probe))
		probe.Close()
		if err != nil {
			return err
		}
		s.log.Info().Strs("brokers", s.cfg.Brokers).Str("topic", s.cfg.Topic).Msg("kafka sink ready (exactly-once: writes inside the source's transactions)")
		return nil
	}
	cl, err := kgo.NewClient(s.clientOptions()...)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("open kafka sink: %w", err))
	}
	if err := s.probe(ctx, kadm.NewClient(cl)); err != nil {
		cl.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cl.Close()
		return nil
	}
	s.cl = cl
	s.log.Info().Strs("brokers", s.cfg.Brokers).Str("topic", s.cfg.Topic).Msg("kafka sink connected")
	return nil
}

func (s *Sink) probe(ctx context.Context, adm *kadm.Client) error {
	var topics []string
	if s.tpl.fixedTopic != "" {
		topics = append(topics, s.tpl.fixedTopic)
	}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return kafkaconf.Classify(fmt.Errorf("open kafka sink: brokers %v: %w", s.cfg.Brokers, err))
	}
	if len(topics) == 0 || s.cfg.AutoCreateTopics {
		return nil
	}
	td, ok := md.Topics[topics[0]]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return component.TaskPermanent(fmt.Errorf("open kafka sink: topic %q does not exist on %v: create it, fix `topic`, or set auto_create_topics = true", topics[0], s.cfg.Brokers))
	case td.Err != nil:
		return kafkaconf.Classify(fmt.Errorf("open kafka sink: topic %q: %w", topics[0], td.Err))
	}
	return nil
}

// batchState collects the outcome of one Write's records. Promises run on
// the client's goroutine, one at a time, but Writes run concurrently, so
// each Write has its own.
type batchState struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed map[*kgo.Record]error
}

func (b *batchState) promise(r *kgo.Record, err error) {
	if err != nil {
		b.mu.Lock()
		if b.failed == nil {
			b.failed = map[*kgo.Record]error{}
		}
		b.failed[r] = err
		b.mu.Unlock()
	}
	b.wg.Done()
}

// Write produces msgs and returns once the brokers acknowledged (or
// rejected) every one of them. Per-record failures come back as a
// *component.RecordErrors with classified errors.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	s.mu.Lock()
	cl, closed := s.cl, s.closed
	s.mu.Unlock()
	manual := s.manual
	if s.txn != nil && !closed {
		sess := s.txn.Session()
		if sess == nil {
			return errors.New("kafka sink: the exactly-once session is not open (the kafka source opens it)")
		}
		cl = sess.Client()
		if _, p := s.txn.Producer(); p != nil {
			manual = p.(*manualPartitioner)
		}
	}
	if cl == nil {
		return errors.New("kafka sink: Write before Open or after Close")
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	pctx := ctx
	if d := s.cfg.DeliveryTimeout.D(); d > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	recs := make([]kgo.Record, len(msgs))
	var prep map[int]error
	// Rendered topics, keys and headers live in one buffer for the Write:
	// the client holds the records until their promises ran, and Write
	// waits for all of them.
	var buf []byte
	bs := &batchState{}
	for i := range msgs {
		var err error
		buf, err = s.record(&recs[i], &msgs[i], buf)
		if err == nil && s.txn != nil {
			err = s.fits(&recs[i])
		}
		if err != nil {
			if prep == nil {
				prep = map[int]error{}
			}
			prep[i] = component.EventPermanent(err)
		}
	}
	var purge map[string]bool
	if s.tpl.fixedTopic == "" {
		missing := s.missingTopics(pctx, cl, recs, prep)
		for i := range recs {
			if err, ok := missing[recs[i].Topic]; ok && prep[i] == nil {
				if prep == nil {
					prep = map[int]error{}
				}
				prep[i] = s.classify(recs[i].Topic, err)
			}
		}
		for topic := range missing {
			if _, _, lerr := cl.PartitionLeader(topic, 0); lerr != nil {
				// The producer still tracks it, from a record that
				// failed otherwise (a deadline): forget it too.
				if purge == nil {
					purge = map[string]bool{}
				}
				purge[topic] = true
			}
		}
	}
	for i := range recs {
		if prep[i] != nil {
			continue
		}
		bs.wg.Add(1)
		cl.Produce(pctx, &recs[i], bs.promise)
	}
	bs.wg.Wait()
	if s.txn == nil && len(bs.failed) > 0 {
		s.sendAlone(pctx, recs, bs)
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	ok := len(msgs) - len(prep) - len(bs.failed)
	s.m.records.Add(uint64(ok))
	if len(prep) == 0 && len(bs.failed) == 0 {
		return nil
	}
	re := &component.RecordErrors{Errs: prep}
	if re.Errs == nil {
		re.Errs = make(map[int]error, len(bs.failed))
	}
	for i := range recs {
		r := &recs[i]
		err, bad := bs.failed[r]
		if !bad {
			continue
		}
		if n, out := manual.bad.LoadAndDelete(r); out {
			re.Errs[i] = component.EventPermanent(fmt.Errorf("event %s: partition %d is out of range: topic %q has %d partitions", msgs[i].Pos, r.Partition, r.Topic, n))
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("not acknowledged within delivery_timeout (%s): %w", s.cfg.DeliveryTimeout, err)
		}
		if errors.Is(err, kerr.MessageTooLarge) {
			err = s.tooLarge(r, err)
		}
		re.Errs[i] = s.classify(r.Topic, err)
		if s.tpl.fixedTopic == "" && (errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.InvalidTopicException)) {
			if purge == nil {
				purge = map[string]bool{}
			}
			purge[r.Topic] = true
		}
		if s.txn != nil && component.ClassOf(re.Errs[i]) == component.ClassEventPermanent &&
			!errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.InvalidTopicException) {
			// The brokers rejected a record they were sent: the
			// transactional producer is failed for the whole transaction,
			// dead-lettering through it is impossible, and aborting would
			// only meet the same rejection again.
			re.Errs[i] = component.TaskPermanent(fmt.Errorf("exactly_once: the brokers rejected event %s after it was sent, which fails the whole transaction (the task keeps its last committed position; fix the record or the topic): %w", msgs[i].Pos, err))
		}
	}
	for _, err := range re.Errs {
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Inc()
	}
	if len(purge) > 0 {
		// The client keeps every topic it was asked to produce to, and
		// asks the brokers for the ones it cannot find at every metadata
		// refresh, for good: templated names from event data (a typo, a
		// hostile producer) would pile up without bound. Records for a
		// topic missing from the start never reach it (missingTopics);
		// this forgets one that was deleted after the producer loaded
		// it. A record routed there again is looked up again.
		cl.PurgeTopicsFromProducing(slices.Collect(maps.Keys(purge))...)
	}
	return re
}

// How a templated topic the producer has not loaded is looked up before its
// records are handed to it: asked up to topicLookups times, topicLookupGap
// apart, since a broker may not know a topic created a moment ago.
const (
	topicLookups   = 3
	topicLookupGap = 250 * time.Millisecond
)

// missingTopics asks the brokers about the topics that recs route to (except
// the records in skip) that the producer has not loaded, and returns those
// that do not exist with their error: UNKNOWN_TOPIC_OR_PARTITION in each of
// topicLookups metadata responses, or INVALID_TOPIC_EXCEPTION. Their records
// then fail before they are produced.
//
// franz-go would find this out itself, but only after UnknownTopicRetries +
// 1 (5) metadata refreshes of its own, whose pace depends on what its
// metadata loop was doing. A first-time topic triggers an immediate refresh,
// followed by quick re-updates 250 ms apart only if the loop was idle. If it
// was waiting out MetadataMinAge (5 s) before a re-update, as the last
// refresh that still saw the previous missing topic leaves it, the trigger
// only cuts that wait short, and the refreshes come 5 s apart. So a record
// for a missing topic failed after 1 s or after 20 s by timing alone, the
// slow case for every missing topic routed to within 5 s of the previous
// one's failure; with a delivery_timeout under 20 s such a record was never
// dead-lettered, every try ending in a retryable deadline. Here the cost is
// topicLookups round trips, and the producer never tracks the name at all.
//
// A topic that exists, or a lookup that fails (brokers unreachable, the
// Write's deadline), leaves the records to the producer, which waits and
// retries as it always did.
func (s *Sink) missingTopics(ctx context.Context, cl *kgo.Client, recs []kgo.Record, skip map[int]error) map[string]error {
	var ask []string
	seen := map[string]bool{}
	for i := range recs {
		t := recs[i].Topic
		if skip[i] != nil || seen[t] {
			continue
		}
		seen[t] = true
		if leader, _, _ := cl.PartitionLeader(t, 0); leader >= 0 {
			continue // loaded: the producer knows it exists
		}
		ask = append(ask, t)
	}
	var missing map[string]error
	fail := func(t string, err error) {
		if missing == nil {
			missing = map[string]error{}
		}
		missing[t] = err
	}
	for try := 1; len(ask) > 0; try++ {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = s.cfg.AutoCreateTopics
		for _, t := range ask {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return missing
		}
		var unknown []string
		for _, rt := range resp.Topics {
			if rt.Topic == nil {
				continue
			}
			switch err := kerr.ErrorForCode(rt.ErrorCode); {
			case errors.Is(err, kerr.UnknownTopicOrPartition):
				unknown = append(unknown, *rt.Topic)
			case errors.Is(err, kerr.InvalidTopicException):
				fail(*rt.Topic, err)
			}
		}
		if try == topicLookups {
			for _, t := range unknown {
				fail(t, fmt.Errorf("topic does not exist: the brokers answered %d lookups with %w", try, kerr.UnknownTopicOrPartition))
			}
			break
		}
		ask = unknown
		if len(ask) == 0 {
			break
		}
		timer := time.NewTimer(topicLookupGap)
		select {
		case <-ctx.Done():
			timer.Stop()
			return missing
		case <-timer.C:
		}
	}
	return missing
}

// sendAlone sends again, each alone in its own produce request, the
// records the brokers rejected with a code that condemns a record
// (INVALID_RECORD, CORRUPT_MESSAGE, INVALID_TIMESTAMP, MESSAGE_TOO_LARGE,
// RECORD_LIST_TOO_LARGE): the brokers answer for a whole batch, so franz-go
// fails every record of a batch for the one bad record in it, maybe of
// another Write. A record that lands is removed from bs.failed; one the
// brokers still reject alone keeps that error. The records go through a
// client of their own, which nothing else uses: on the shared client, the
// records of other Writes to the partition would join their batches. Under
// exactly_once this is not done: the rejection has failed the transaction
// already (Write makes it task-permanent).
func (s *Sink) sendAlone(ctx context.Context, recs []kgo.Record, bs *batchState) {
	type part struct {
		topic string
		p     int32
	}
	byPart := map[part][]*kgo.Record{}
	var parts []part
	n := 0
	for i := range recs {
		r := &recs[i]
		err, bad := bs.failed[r]
		if !bad || kafkaconf.Class(err) != component.ClassEventPermanent {
			continue
		}
		k := part{r.Topic, r.Partition}
		if byPart[k] == nil {
			parts = append(parts, k)
		}
		byPart[k] = append(byPart[k], r)
		n++
	}
	if n == 0 {
		return
	}
	cl, err := s.aloneClient()
	if err != nil {
		s.log.Warn().Err(err).Msg("kafka sink: cannot send rejected records again one by one; they fail as rejected")
		return
	}
	// Partitions in parallel, the records of one partition one after the
	// other: only then is each a batch of its own.
	var wg sync.WaitGroup
	landed := 0
	for _, k := range parts {
		wg.Go(func() {
			for _, r := range byPart[k] {
				err := cl.ProduceSync(ctx, r).FirstErr()
				bs.mu.Lock()
				if err == nil {
					delete(bs.failed, r)
					landed++
				} else {
					bs.failed[r] = err
				}
				bs.mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.log.Info().Int("records", n).Int("landed", landed).Msg("kafka sink: the brokers rejected whole batches; their records were sent again one by one")
}

// aloneClient returns the client of sendAlone: the sink's settings, with
// the partition each record already has.
func (s *Sink) aloneClient() (*kgo.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alone != nil {
		return s.alone, nil
	}
	if s.closed {
		return nil, errors.New("kafka sink closed")
	}
	opts := append(s.clientOptions(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	s.alone = cl
	return cl, nil
}

// fits checks a record against batch_max_bytes where the client cannot:
// under exactly_once the sinks of a task share one producer, whose limit
// is the largest of theirs. The size is that of a batch holding only r,
// as the client computes it, give or take a few bytes of varints.
func (s *Sink) fits(r *kgo.Record) error {
	if n := aloneBytes(r); n > s.cfg.BatchMaxBytes.Int() {
		return fmt.Errorf("produce to topic %q: %w (a batch of this record alone takes about %d bytes; batch_max_bytes is %d)", r.Topic, kerr.MessageTooLarge, n, s.cfg.BatchMaxBytes.Int())
	}
	return nil
}

// aloneBytes is the size of a record batch holding only r, as the client
// computes it, give or take a few bytes of varints.
func aloneBytes(r *kgo.Record) int {
	const batchOverhead, recordOverhead, headerOverhead = 61, 21, 10
	n := batchOverhead + recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// tooLarge explains a MESSAGE_TOO_LARGE, which franz-go words as the
// brokers' limit ("larger than the max message size the server will
// accept") also when the record is over the sink's own batch_max_bytes and
// was never sent: it names the limit to raise.
func (s *Sink) tooLarge(r *kgo.Record, err error) error {
	n, limit := aloneBytes(r), s.cfg.BatchMaxBytes.Int()
	if n > limit {
		return fmt.Errorf("%w: a batch of this record alone takes about %d bytes, over the sink's batch_max_bytes (%d); "+
			"to write it, raise batch_max_bytes (and the topic's max.message.bytes, if lower)", err, n, limit)
	}
	return fmt.Errorf("%w: a batch of this record alone takes about %d bytes, within batch_max_bytes (%d), so the brokers refused it: "+
		"raise the topic's max.message.bytes (or set batch_max_bytes at or below it)", err, n, limit)
}

// record fills r from m. Rendered text is appended to buf, which it returns.
func (s *Sink) record(r *kgo.Record, m *message.Message, buf []byte) ([]byte, error) {
	t := s.tpl
	r.Value = m.Payload
	if s.cfg.Timestamp == "source" && !m.Time.IsZero() {
		r.Timestamp = m.Time
	}
	if t.fixedTopic != "" {
		r.Topic = t.fixedTopic
	} else {
		start := len(buf)
		var err error
		if buf, err = t.topic.Render(buf, m.Event); err != nil {
			return buf, fmt.Errorf("topic template over event %s: %w", m.Pos, err)
		}
		r.Topic = string(buf[start:])
		if msg := kafkaconf.TopicProblem(r.Topic); msg != "" {
			return buf, fmt.Errorf("topic template %q over event %s: %s", s.cfg.Topic, m.Pos, msg)
		}
	}
	r.Key = m.Key
	if t.key != nil {
		start := len(buf)
		var err error
		if buf, err = t.key.Render(buf, m.Event); err != nil {
			return buf, fmt.Errorf("key template over event %s: %w", m.Pos, err)
		}
		r.Key = nil
		if len(buf) > start {
			r.Key = buf[start:len(buf):len(buf)]
		}
	}
	if s.cfg.ForwardHeaders && len(m.Headers) > 0 || len(t.headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, 0, len(m.Headers)+len(t.headers))
		if s.cfg.ForwardHeaders {
			for _, h := range m.Headers {
				if !t.overrides(h.Key) {
					r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
				}
			}
		}
		for _, h := range t.headers {
			start := len(buf)
			var err error
			if buf, err = h.tpl.Render(buf, m.Event); err != nil {
				return buf, fmt.Errorf("header %q template over event %s: %w", h.name, m.Pos, err)
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.name, Value: buf[start:len(buf):len(buf)]})
		}
	}
	switch {
	case t.manualFixed:
		r.Partition = t.fixedPart
	case t.partition != nil:
		start := len(buf)
		var err error
		if buf, err = t.partition.Render(buf, m.Event); err != nil {
			return buf, fmt.Errorf("partition template over event %s: %w", m.Pos, err)
		}
		p, err := parsePartition(buf[start:])
		if err != nil {
			return buf, fmt.Errorf("event %s: %w", m.Pos, err)
		}
		r.Partition = p
	}
	return buf, nil
}

func (t *templates) overrides(name string) bool {
	for _, h := range t.headers {
		if h.name == name {
			return true
		}
	}
	return false
}

// classify maps a produce failure to its class. A topic that does not
// exist stops the task when it is the configured topic, but only fails the
// record when a template chose it: other records may route fine.
func (s *Sink) classify(topic string, err error) error {
	err = fmt.Errorf("produce to topic %q: %w", topic, err)
	class := kafkaconf.Class(err)
	if class == component.ClassTaskPermanent && s.tpl.fixedTopic == "" &&
		(errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.InvalidTopicException)) {
		class = component.ClassEventPermanent
	}
	switch class {
	case component.ClassEventPermanent:
		return component.EventPermanent(err)
	case component.ClassTaskPermanent:
		return component.TaskPermanent(err)
	}
	return component.Retryable(err, 0)
}

// Close releases the client. Records still buffered fail, which unblocks a
// pending Write. It is safe without Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	cl, alone := s.cl, s.alone
	s.cl, s.alone = nil, nil
	s.closed = true
	s.mu.Unlock()
	if alone != nil {
		alone.Close()
	}
	if cl == nil {
		return nil
	}
	var err error
	if ferr := cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("close kafka sink: flush: %w", ferr)
	}
	cl.Close()
	return err
}

// manualPartitioner is kgo.ManualPartitioner that remembers which records
// asked for a partition the topic does not have.
type manualPartitioner struct{ bad sync.Map } // *kgo.Record -> partition count

func (m *manualPartitioner) ForTopic(string) kgo.TopicPartitioner { return m }

func (m *manualPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (m *manualPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition < 0 || int(r.Partition) >= n {
		m.bad.Store(r, n)
		return -1
	}
	return int(r.Partition)
}
