package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/internal/deadletter"
	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// KafkaSource reads a Kafka dead-letter topic (written by a Kafka dead-letter
// sink: the value is the original event, the details are sluice-* headers)
// from its beginning to the end it had when the replay started. It joins no
// consumer group and commits nothing: a replay is a one-off run.
//
// It reads committed records only: a dead-letter topic written under
// exactly_once holds records of aborted transactions, which were never dead
// letters (the transaction rolled back and the events were processed
// again). The end noted at Open is the high watermark, one past the last
// record or transaction marker; markers reach the source (KeepControlRecords)
// only so that their offsets count towards that end, and are never emitted.
// A transaction still open when the replay starts holds the replay until it
// commits or aborts: its marker lands at or past the noted end.
type KafkaSource struct {
	brokers []string
	topic   string
	stages  []string
	batch   int
	env     component.Env
	// conn is the task's own connection (client_id, sasl, tls keys of a
	// dlq source); nil: borrow the dead-letter sink's.
	conn *kafkaconf.Conn

	cl   *kgo.Client
	dec  *kafkaconf.BatchDecompressor
	ends map[int32]int64 // partition -> end offset at start
	next map[int32]int64 // partition -> one past the last record read (at first: its start)
	done map[int32]bool
	w    lineformat.Wrapper
}

// ParseKafkaURL splits kafka://host:port[,host:port]/topic.
func ParseKafkaURL(s string) (brokers []string, topic string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "kafka" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, "", fmt.Errorf("%q is not a Kafka dead-letter address: want kafka://host:port[,host:port]/topic", s)
	}
	return strings.Split(u.Host, ","), strings.Trim(u.Path, "/"), nil
}

// NewKafka returns a source replaying the dead-letter topic at addr
// (kafka://brokers/topic), batch records at a time (0: 512).
func NewKafka(addr string, stages []string, batch int, env component.Env) (*KafkaSource, error) {
	brokers, topic, err := ParseKafkaURL(addr)
	if err != nil {
		return nil, err
	}
	if batch <= 0 {
		batch = 512
	}
	return &KafkaSource{brokers: brokers, topic: topic, stages: stages, batch: batch, env: env,
		w: deadletter.NewWrapper(env.MaxEvent)}, nil
}

// Open connects and notes where the topic ends now.
func (s *KafkaSource) Open(ctx context.Context) error {
	// A dead letter holds one event, under max_event_size: a batch is
	// bounded as the Kafka source bounds them.
	dec, err := kafkaconf.NewBatchDecompressor(kafkaconf.DecompressLimit(0, s.env.MaxEvent))
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("kafka dead-letter topic %s: %w", s.topic, err))
	}
	s.dec = dec
	// The task's Kafka dead-letter sink that wrote the topic lends its
	// SASL and TLS settings (sluice dlq replay), unless the source has
	// its own.
	opts, secured := kafkaconf.DeadLetterOptions(s.env.Shared, s.env.Task, s.topic, s.brokers)
	if s.conn != nil {
		if opts, err = s.conn.Options(s.env.Dir, s.env.Logger); err != nil {
			return component.TaskPermanent(fmt.Errorf("kafka dead-letter topic %s: %w", s.topic, err))
		}
		secured = s.conn.SASL != nil || s.conn.TLS != nil && (s.conn.TLS.Enabled == nil || *s.conn.TLS.Enabled)
	}
	opts = append(opts, kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.WithDecompressor(dec), kgo.WithHooks(dec))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("kafka dead-letter topic %s: %w", s.topic, err))
	}
	fail := func(err error) error {
		cl.Close()
		switch {
		case secured || !unauthenticated(err):
		case s.conn != nil:
			err = fmt.Errorf("%w (connected without SASL or TLS: set the dlq source's sasl and tls keys)", err)
		default:
			err = fmt.Errorf("%w (connected without SASL or TLS: set the dlq source's sasl and tls keys; without them, the replay takes them from the task's Kafka [dead_letter] when it writes topic %q on one of %v, and none does)", err, s.topic, s.brokers)
		}
		return component.TaskPermanent(fmt.Errorf("kafka dead-letter topic %s: %w", s.topic, err))
	}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, s.topic)
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fail(err)
	}
	s.ends, s.next, s.done = map[int32]int64{}, map[int32]int64{}, map[int32]bool{}
	ends.Each(func(o kadm.ListedOffset) {
		s.ends[o.Partition] = o.Offset
		start, _ := starts.Lookup(s.topic, o.Partition)
		s.next[o.Partition] = start.Offset
		// A partition whose records were all removed (retention,
		// delete-records) starts at its end, which may be past 0: no
		// record will come to say it is read.
		if o.Offset == 0 || start.Offset >= o.Offset {
			s.done[o.Partition] = true
		}
	})
	s.cl = cl
	return nil
}

// unauthenticated reports whether err may come from connecting without the
// SASL or TLS a cluster requires: it dropped the connection, or refused the
// client.
func unauthenticated(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return true
	}
	return component.ClassOf(kafkaconf.Classify(err)) == component.ClassTaskPermanent && !errors.Is(err, kerr.UnknownTopicOrPartition)
}

// Close disconnects.
func (s *KafkaSource) Close(context.Context) error {
	if s.cl != nil {
		s.cl.Close()
	}
	return nil
}

// Read returns the next dead-letter events until the end noted at Open.
func (s *KafkaSource) Read(ctx context.Context) (component.Batch, error) {
	for {
		if len(s.done) == len(s.ends) {
			return component.Batch{}, io.EOF
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := s.cl.PollRecords(pctx, s.batch)
		cancel()
		if err := ctx.Err(); err != nil {
			return component.Batch{}, err
		}
		var errs []error
		fs.EachError(func(_ string, _ int32, err error) {
			var tooLarge *kgo.ErrDecompressTooLarge
			switch {
			case errors.As(err, &tooLarge):
				errs = append(errs, s.undecompressable(tooLarge))
			case !errors.Is(err, context.DeadlineExceeded):
				errs = append(errs, err)
			}
		})
		if len(errs) > 0 {
			return component.Batch{}, fmt.Errorf("kafka dead-letter topic %s: %w", s.topic, errors.Join(errs...))
		}
		if fs.NumRecords() == 0 {
			s.checkTails(ctx)
			continue
		}
		var msgs []message.Message
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			s.next[r.Partition] = max(s.next[r.Partition], r.Offset+1)
			end := s.ends[r.Partition]
			if r.Offset >= end || s.done[r.Partition] {
				s.done[r.Partition] = true
				return
			}
			if r.Offset+1 >= end {
				s.done[r.Partition] = true
			}
			if r.Attrs.IsControl() {
				return // a transaction marker: it only counts towards the end
			}
			stage := ""
			for _, h := range r.Headers {
				if h.Key == delivery.HeaderStage {
					stage = string(h.Value)
				}
			}
			if !stageWanted(s.stages, stage) {
				return
			}
			pos := message.Position{Stream: r.Topic, Partition: r.Partition, Offset: r.Offset}
			out, err := s.w.Append(nil, r.Value, pos)
			m := message.Message{Payload: out, Event: out, Key: r.Key, Pos: pos, Time: now}
			if err != nil {
				m.Payload, m.Event, m.Err = r.Value, r.Value, fmt.Errorf("dead-letter record %s: %w", pos, err)
			}
			msgs = append(msgs, m)
		})
		if len(msgs) > 0 {
			return component.Batch{Messages: msgs, Lane: s.topic}, nil
		}
	}
}

// checkTails marks done the partitions that hold no record left to read
// before their end. A compacted topic can lose the records at the end of a
// partition (expired tombstones, the data and marker of an aborted
// transaction): the client then has nothing to hand out, however long the
// replay waits, and the last record read is short of the end. Read calls
// it after a poll that found nothing. It asks the partition's leader for
// what it holds from the next offset to read, as the client would, and
// walks that up to the end: a partition is done once that offset reaches
// the end, whatever records exist.
func (s *KafkaSource) checkTails(ctx context.Context) {
	var parts []int32
	for p := range s.ends {
		if !s.done[p] {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return
	}
	md, err := kadm.NewClient(s.cl).Metadata(ctx, s.topic)
	if err != nil {
		return // the next idle poll tries again
	}
	td, ok := md.Topics[s.topic]
	if !ok || td.Err != nil {
		return
	}
	for _, p := range parts {
		pd, ok := td.Partitions[p]
		if !ok || pd.Err != nil || pd.Leader < 0 {
			continue
		}
		if s.emptyUpToEnd(ctx, td.ID, p, pd.Leader) {
			s.done[p] = true
		}
	}
}

// emptyUpToEnd reports whether partition p holds no committed record (nor
// transaction marker) from its next offset to read up to its end.
func (s *KafkaSource) emptyUpToEnd(ctx context.Context, id kadm.TopicID, p, leader int32) bool {
	end, next := s.ends[p], s.next[p]
	for range 64 { // each round moves past at least one batch
		if next >= end {
			return true
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		req.IsolationLevel = 1 // read committed, as the client
		req.SessionEpoch = -1  // no fetch session
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = s.topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, next, 1<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, s.cl.Broker(int(leader)))
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return false
		}
		got := &resp.Topics[0].Partitions[0]
		if errors.Is(kerr.ErrorForCode(got.ErrorCode), kerr.OffsetOutOfRange) && got.LogStartOffset > next {
			next = got.LogStartOffset // retention moved the start past it
			continue
		}
		fp, after := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			KeepControlRecords: true, Offset: next, IsolationLevel: kgo.ReadCommitted(), Topic: s.topic, Partition: p,
		}, got, s.dec, nil)
		switch {
		case fp.Err != nil:
			return false
		case len(fp.Records) > 0 && fp.Records[0].Offset < end:
			return false // the client hands it out
		case after > next:
			next = after // batches emptied by compaction, passed over
		default:
			// Nothing at or past next below the last stable offset: the
			// records up to the end are gone, unless a transaction open
			// at the end still holds them back.
			return got.LastStableOffset >= end || got.LastStableOffset < 0 && got.HighWatermark >= end
		}
	}
	return false
}

// undecompressable explains a record batch that the client could not
// decompress: the replay cannot go past it.
func (s *KafkaSource) undecompressable(e *kgo.ErrDecompressTooLarge) error {
	where := fmt.Sprintf("the record batch at offsets %d to %d of partition %d", e.Offset, e.NextOffset-1, e.Partition)
	if cause := s.dec.Cause(e.Topic, e.Partition); cause != nil {
		return fmt.Errorf("%s cannot be decompressed: %w", where, cause)
	}
	return fmt.Errorf("%s decompresses to more than %d bytes (4 x max_event_size, at least 64 MiB): raise the task's max_event_size (or --max-event-size) for the replay", where, s.dec.Limit())
}

var _ component.Source = (*KafkaSource)(nil)
