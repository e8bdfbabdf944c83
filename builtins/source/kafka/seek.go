package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Lag returns the records between the last one read and the high
// watermarks, summed over the partitions the source holds; ok is false
// before the first fetch told it.
func (s *Source) Lag() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	known := false
	for _, st := range s.parts {
		if st.lagKnown && !st.dead {
			sum += st.lag
			known = true
		}
	}
	return sum, known
}

// Seek moves every partition the source holds to the earliest or latest
// offset, or to the first record at or after a time (to: "earliest",
// "latest" or RFC 3339), and commits that position, so that a restart
// resumes from there too. The engine calls it with no Read in progress
// and every batch read acknowledged (an operator's rewind through the
// admin API). Partitions assigned later start from the group's committed
// offsets, as always. Not under exactly_once: its transactions commit.
func (s *Source) Seek(ctx context.Context, to string) error {
	s.mu.Lock()
	cl, eos := s.cl, s.eos
	topics := map[string]bool{}
	for k, st := range s.parts {
		if !st.dead {
			topics[k.topic] = true
		}
	}
	s.mu.Unlock()
	switch {
	case cl == nil:
		return errors.New("the source is not connected")
	case eos:
		return errors.New("under exactly_once the transactions commit; reset the group's offsets with the task stopped")
	case len(topics) == 0:
		return errors.New("the source holds no partition yet (the group is still assigning them); try again in a moment")
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	adm := kadm.NewClient(cl)
	var listed kadm.ListedOffsets
	var err error
	switch to {
	case "earliest":
		listed, err = adm.ListStartOffsets(ctx, names...)
	case "latest":
		listed, err = adm.ListEndOffsets(ctx, names...)
	default:
		at, perr := time.Parse(time.RFC3339Nano, to)
		if perr != nil {
			return fmt.Errorf("seek to %q: want earliest, latest or an RFC 3339 time", to)
		}
		listed, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), names...)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("listing the offsets of %v: %w", names, err)
	}
	// As in Rewind: a poll with a canceled context holds rebalances off
	// until AllowRebalance, so no partition changes hands meanwhile.
	done, cancel := context.WithCancel(ctx)
	cancel()
	cl.PollRecords(done, 1)
	defer cl.AllowRebalance()
	s.mu.Lock()
	set := map[string]map[int32]kgo.EpochOffset{}
	for _, st := range s.parts {
		lo, ok := listed.Lookup(st.topic, st.part)
		if st.dead || !ok || lo.Err != nil {
			continue
		}
		h, a := st.counts()
		s.handed -= h
		s.acked -= a
		st.rewindTo()
		at := kgo.EpochOffset{Epoch: lo.LeaderEpoch, Offset: lo.Offset}
		// The new position is committed even when it is behind the
		// committed one: a restart resumes from where the operator asked.
		st.mark, st.marked, st.committed = at, true, -1
		st.seeks++
		st.lagKnown = false
		if set[st.topic] == nil {
			set[st.topic] = map[int32]kgo.EpochOffset{}
		}
		set[st.topic][st.part] = at
	}
	clear(s.queue)
	s.queue = s.queue[:0]
	s.m.uncommitted.Set(float64(s.handed))
	s.notifyLocked()
	s.mu.Unlock()
	cl.SetOffsets(set)
	s.commitNow()
	s.log.Info().Str("to", to).Interface("offsets", set).Msg("source moved by an operator's rewind")
	return nil
}
