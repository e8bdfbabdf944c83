package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Exactly-once (exactly_once = true): the source, the Kafka sink and a
// Kafka dead-letter sink share one franz-go GroupTransactSession. The
// engine reads in cycles (component.Cycler): the source begins a
// transaction before handing out the first batch of a cycle, the sinks
// produce inside it, and once every batch of the cycle is acknowledged the
// engine ends the cycle and the source commits the transaction together
// with the group's offsets (the acknowledged prefix of each partition), or
// aborts it, which rewinds every partition to the last committed
// transaction. A rebalance aborts the open transaction (franz-go's
// session does it), so a partition's new owner starts exactly where the
// last commit left it.

// Backoff after an aborted cycle, so that an outage is not hammered.
const (
	minAbortBackoff = 250 * time.Millisecond
	maxAbortBackoff = 10 * time.Second
)

// CycleDue reports whether the open transaction should end: it has lasted
// commit_interval, or it cannot commit anymore (a batch failed, partitions
// were revoked).
func (s *Source) CycleDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eos && s.inTxn && (s.abortSoon || !time.Now().Before(s.txnStart.Add(s.cfg.CommitInterval.D())))
}

// begin begins a transaction. Read calls it with no batch in flight.
func (s *Source) begin(ctx context.Context) error {
	if err := s.settle(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if err := sess.Begin(); err != nil {
		return txnError(fmt.Errorf("kafka source: begin a transaction (transactional_id %q): %w", s.txnID, err), s.txnID)
	}
	s.mu.Lock()
	s.inTxn, s.txnStart, s.abortSoon = true, time.Now(), false
	s.mu.Unlock()
	return nil
}

// unsettledLocked reports whether a transaction's end failed and settle
// has not run since.
func (s *Source) unsettledLocked() bool {
	return s.unended || s.unconfirmed != nil
}

// settle finishes with a transaction whose end failed (the brokers were
// unreachable): it is aborted, as franz-go documents (until then the
// client is still in it), and a commit whose answer was lost is looked up
// (settleUnconfirmed). Read calls it before the next transaction, and also
// with nothing to read: the partitions may have gone back to the group
// meanwhile (the lost commit's heartbeats failed too) and come back at
// offsets that commit carried, with no record left to begin a transaction
// for, and the commit would never be counted.
func (s *Source) settle(ctx context.Context) error {
	s.mu.Lock()
	cl, unended := s.cl, s.unended
	s.mu.Unlock()
	if unended {
		if err := cl.AbortBufferedRecords(ctx); err != nil {
			return err
		}
		if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
			return txnError(fmt.Errorf("kafka source: abort the transaction whose end failed: %w", err), s.txnID)
		}
		s.mu.Lock()
		s.unended = false
		s.mu.Unlock()
	}
	return s.settleUnconfirmed(ctx, cl)
}

// abortSoonLocked marks the open transaction as unable to commit and
// wakes a Read waiting for records, so that the cycle ends now.
func (s *Source) abortSoonLocked() {
	s.abortSoon = true
	if s.pollCancel != nil {
		s.pollCancel()
	}
	s.notifyLocked()
}

// EndCycle ends the open transaction: with commit, the records produced in
// it and the acknowledged offsets commit together; otherwise (or when the
// commit fails, or partitions were revoked meanwhile) everything aborts and
// every partition goes back to its last committed offset, forgetting what
// was read since. After an abort that the task asked for or that failed,
// reading pauses briefly (growing up to 10 s while aborts repeat).
func (s *Source) EndCycle(ctx context.Context, commit bool) error {
	if !s.eos {
		return nil
	}
	s.mu.Lock()
	if !s.inTxn {
		s.mu.Unlock()
		return nil
	}
	sess, cl := s.sess, s.cl
	marks := map[string]map[int32]kgo.EpochOffset{}
	for _, st := range s.parts {
		if off, ok := st.toCommit(); ok {
			if marks[st.topic] == nil {
				marks[st.topic] = map[int32]kgo.EpochOffset{}
			}
			marks[st.topic][st.part] = off
		}
	}
	for k, eo := range s.recommit {
		if _, ok := marks[k.topic][k.part]; !ok {
			if marks[k.topic] == nil {
				marks[k.topic] = map[int32]kgo.EpochOffset{}
			}
			marks[k.topic][k.part] = eo
		}
	}
	s.mu.Unlock()
	// The session commits what was polled; commit what was acknowledged
	// instead: batches polled but not handed out yet go to the next
	// transaction.
	var sent []tp
	fctx := kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		topics := req.Topics[:0]
		for _, t := range req.Topics {
			parts := t.Partitions[:0]
			for _, p := range t.Partitions {
				if eo, ok := marks[t.Topic][p.Partition]; ok {
					p.Offset, p.LeaderEpoch = eo.Offset, eo.Epoch
					parts = append(parts, p)
					sent = append(sent, tp{t.Topic, p.Partition})
				}
			}
			if len(parts) > 0 {
				t.Partitions = parts
				topics = append(topics, t)
			}
		}
		req.Topics = topics
		return nil
	})
	// Past the transaction timeout the brokers abort anyway; never wait
	// longer (franz-go's End can wait on a group that never settles).
	fctx, cancel := context.WithTimeout(fctx, s.cfg.TransactionTimeout.D())
	defer cancel()
	start := time.Now()
	committed, err := sess.End(fctx, kgo.TransactionEndTry(commit))
	s.m.commit.Observe(time.Since(start).Seconds())

	s.mu.Lock()
	s.inTxn, s.abortSoon = false, false
	cause := s.abortErr
	s.abortErr = nil
	var rewind map[string]map[int32]kgo.EpochOffset
	if committed {
		s.m.txns.WithLabelValues("committed").Inc()
		for topic, ps := range marks {
			for p, eo := range ps {
				if st := s.parts[tp{topic, p}]; st != nil {
					st.committedTo(eo.Offset)
				}
			}
		}
		for _, k := range sent {
			delete(s.recommit, k)
		}
		s.backoff = 0
	} else {
		if err == nil || !commit {
			// A commit whose answer was lost is counted once the brokers
			// say how it ended (settleUnconfirmed): it may have committed.
			s.m.txns.WithLabelValues("aborted").Inc()
		}
		rewind = map[string]map[int32]kgo.EpochOffset{}
		if err != nil {
			s.unended = true
			if commit {
				// EndTxn may have committed with its answer lost: the
				// next begin asks the brokers.
				s.unconfirmed = marks
			}
			// The session may have given up before rewinding (a context
			// ending): rewind ourselves to the first record read since
			// the last commit.
			for _, st := range s.parts {
				if len(st.batches) > 0 {
					if rewind[st.topic] == nil {
						rewind[st.topic] = map[int32]kgo.EpochOffset{}
					}
					rewind[st.topic][st.part] = st.batches[0].first
				}
			}
		}
		// The session rewound to the offsets it knows as committed,
		// which are older than those of an unconfirmed commit that did
		// commit.
		for k, eo := range s.recommit {
			if _, ok := rewind[k.topic][k.part]; !ok {
				if rewind[k.topic] == nil {
					rewind[k.topic] = map[int32]kgo.EpochOffset{}
				}
				rewind[k.topic][k.part] = eo
			}
		}
		clear(s.queue)
		s.queue = s.queue[:0]
		for _, st := range s.parts {
			st.abort()
		}
		if !commit || err != nil {
			s.backoff = min(max(2*s.backoff, minAbortBackoff), maxAbortBackoff)
			s.retryAt = time.Now().Add(s.backoff)
		}
	}
	s.handed, s.acked = 0, 0
	for _, st := range s.parts {
		h, a := st.counts()
		s.handed += h
		s.acked += a
	}
	s.m.uncommitted.Set(float64(s.handed))
	s.notifyLocked()
	closing := s.closing
	s.mu.Unlock()

	if len(rewind) > 0 && !closing {
		done, cancel := context.WithCancel(ctx)
		cancel()
		cl.PollRecords(done, 1) // holds rebalances off until AllowRebalance
		cl.SetOffsets(rewind)
		cl.AllowRebalance()
	}
	switch {
	case err != nil:
		s.m.commitE.Inc()
		return txnError(fmt.Errorf("kafka source: end transaction (commit %v): %w", commit, err), s.txnID)
	case commit && !committed:
		s.log.Info().Msg("transaction aborted (partitions were revoked, or the group moved on); its records will be read again")
	case !commit && !closing && cause != nil:
		s.log.Warn().Err(cause).Dur("retry_in", s.backoffNow()).Msg("transaction aborted after a failure; its records will be read again")
	}
	return nil
}

// settleUnconfirmed finds out, once the transaction whose end got no answer
// was aborted (which ends it on the brokers if the commit never arrived),
// whether it committed: the group's offsets on the brokers commit with the
// records, so a partition whose committed offset is the one that
// transaction carried was committed by it. Such a partition goes on from
// there, forgetting what was read again since; reading it again would write
// its outputs twice.
func (s *Source) settleUnconfirmed(ctx context.Context, cl *kgo.Client) error {
	s.mu.Lock()
	marks := s.unconfirmed
	s.mu.Unlock()
	if marks == nil {
		return nil
	}
	topics := slices.Collect(maps.Keys(marks))
	offs, err := kadm.NewClient(cl).FetchOffsetsForTopics(kadm.RequireStable(ctx), s.group, topics...)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return kafkaconf.Classify(fmt.Errorf("kafka source: read the offsets of group %q to learn whether the transaction whose end got no answer committed: %w", s.group, err))
	}
	// Hold rebalances off while the offsets are chosen and set.
	done, cancel := context.WithCancel(ctx)
	cancel()
	cl.PollRecords(done, 1)
	defer cl.AllowRebalance()
	s.mu.Lock()
	set := map[string]map[int32]kgo.EpochOffset{}
	var states []*partState
	committed := false
	for topic, ps := range marks {
		for p, eo := range ps {
			st := s.parts[tp{topic, p}]
			o, ok := offs.Lookup(topic, p)
			if ok && o.At == eo.Offset {
				committed = true // also for a partition since revoked
			}
			if st == nil || st.dead || !ok || o.At != eo.Offset {
				continue
			}
			states = append(states, st)
			if set[topic] == nil {
				set[topic] = map[int32]kgo.EpochOffset{}
			}
			set[topic][p] = eo
			if s.recommit == nil {
				s.recommit = map[tp]kgo.EpochOffset{}
			}
			s.recommit[st.tp] = eo
		}
	}
	// No batch of this cycle was handed out yet: only queued ones go.
	s.dropQueuedLocked(states)
	for _, st := range states {
		st.abort()
		st.committed = max(st.committed, set[st.topic][st.part].Offset)
	}
	s.unconfirmed = nil
	// The offsets commit with the records: the transaction committed when
	// the group holds the offsets it carried.
	if committed {
		s.m.txns.WithLabelValues("committed").Inc()
	} else {
		s.m.txns.WithLabelValues("aborted").Inc()
	}
	s.notifyLocked()
	s.mu.Unlock()
	if len(set) > 0 {
		cl.SetOffsets(set)
		s.log.Info().Interface("offsets", set).Msg("the transaction whose end got no answer did commit; going on after it")
	}
	return nil
}

// txnError classifies a transaction failure: a fenced producer means
// another process uses the same transactional id, which no retry fixes.
// The brokers may say so with INVALID_PRODUCER_EPOCH (a produce or an
// InitProducerID at the epoch the newer process bumped): franz-go then
// holds the producer id as failed for good, and every later Begin fails
// the same way.
func txnError(err error, id string) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return component.TaskPermanent(fmt.Errorf("%w: another process uses transactional_id %q; give each process its own (or leave transactional_id unset)", err, id))
	}
	return kafkaconf.Classify(err)
}

func (s *Source) backoffNow() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backoff
}
