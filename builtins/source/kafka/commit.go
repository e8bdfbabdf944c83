package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitNow asks the committer for a commit without waiting for it.
func (s *Source) commitNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// committer commits the acknowledged offsets every commit_interval and
// whenever asked (half the window acknowledged, or Read waiting for room),
// until ctx ends. At-least-once only: under exactly_once the transactions
// commit.
func (s *Source) committer(ctx context.Context, cl *kgo.Client, stopped chan struct{}) {
	defer close(stopped)
	tick := time.NewTicker(s.cfg.CommitInterval.D())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
		if s.commit(ctx, cl, nil, "periodic") != nil {
			// Do not hammer a coordinator that refuses: the next kick or
			// tick retries.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// commit synchronously commits the acknowledged prefix of the partitions
// in only (nil: every partition) that moved past their last commit, and
// forgets the batches it covers. It logs and returns the first error.
//
// Commits run one at a time, from taking the offsets to the answer: the
// committer's and a revoke's could otherwise run together, and the one
// that took the older offsets could reach franz-go (which sends commits in
// the order they reach it) last, moving the group back (records read again
// after a restart or by the partition's new owner).
func (s *Source) commit(ctx context.Context, cl *kgo.Client, only []*partState, why string) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	type item struct {
		st    *partState
		off   kgo.EpochOffset
		seeks uint64
	}
	var items []item
	offsets := map[string]map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	add := func(st *partState) {
		if st.dead {
			return
		}
		if off, ok := st.toCommit(); ok {
			items = append(items, item{st, off, st.seeks})
			if offsets[st.topic] == nil {
				offsets[st.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[st.topic][st.part] = off
		}
	}
	if only == nil {
		for _, st := range s.parts {
			add(st)
		}
	} else {
		for _, st := range only {
			add(st)
		}
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	if s.beforeSend != nil {
		s.beforeSend(why)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rerr error
	bad := map[tp]bool{}
	start := time.Now()
	cl.CommitOffsetsSync(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					bad[tp{t.Topic, p.Partition}] = true
					rerr = err
				}
			}
		}
	})
	s.m.commit.Observe(time.Since(start).Seconds())
	s.mu.Lock()
	for _, it := range items {
		if it.st.dead || bad[it.st.tp] || rerr != nil && len(bad) == 0 {
			continue
		}
		if it.st.seeks != it.seeks {
			// An operator's Seek moved the partition while this commit was
			// on its way: recording its offset would make the commit Seek
			// asked for (queued behind this one) find nothing to do, and
			// the group stayed at the old offset, past a rewind's records.
			continue
		}
		gone := it.st.committedTo(it.off.Offset)
		s.handed -= gone
		s.acked -= gone
	}
	s.m.uncommitted.Set(float64(s.handed))
	s.notifyLocked()
	s.mu.Unlock()
	if rerr != nil {
		s.m.commitE.Inc()
		s.log.Warn().Err(rerr).Str("why", why).Msg("offset commit failed; the next commit retries, and records after the last committed offset would be read again after a crash")
	}
	return rerr
}
