package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// tp names a topic-partition.
type tp struct {
	topic string
	part  int32
}

// partState tracks the batches read from one partition during one
// assignment, in read order, and the offset that may be committed: one past
// the last record of the longest prefix of batches acknowledged without
// error. A batch acknowledged with an error stops the prefix for good: the
// engine halted on it and nothing after it may be committed.
//
// A partition that is revoked or lost gets a new partState if it comes
// back, so acknowledgements of the old assignment never mix with the new.
// All fields are guarded by Source.mu.
type partState struct {
	tp
	lane    string
	batches []*pending // read order; handed-out batches first, then queued ones
	mark    kgo.EpochOffset
	marked  bool // mark is set
	failed  bool // a batch was nacked
	dead    bool // revoked or lost
}

// pending is one batch read from a partition.
type pending struct {
	last   kgo.EpochOffset // the last record's epoch and offset + 1
	handed bool            // returned by Read (else still queued)
	done   bool            // acknowledged without error
}

// add registers a batch whose last record is last.
func (p *partState) add(last *kgo.Record) *pending {
	b := &pending{last: kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}}
	p.batches = append(p.batches, b)
	return b
}

// ack records the fate of b and advances the committable prefix. It
// reports whether mark moved.
func (p *partState) ack(b *pending, err error) bool {
	if p.dead {
		return false
	}
	if err != nil {
		p.failed = true
		return false
	}
	b.done = true
	if p.failed {
		return false
	}
	moved := false
	n := 0
	for n < len(p.batches) && p.batches[n].done {
		p.mark, p.marked, moved = p.batches[n].last, true, true
		n++
	}
	if n > 0 {
		clear(p.batches[:n])
		p.batches = p.batches[n:]
	}
	return moved
}

// inFlight reports whether batches handed to the engine are unacknowledged
// (and can still complete the prefix).
func (p *partState) inFlight() bool {
	if p.failed {
		return false
	}
	for _, b := range p.batches {
		if b.handed && !b.done {
			return true
		}
	}
	return false
}

// dropQueued forgets the batches that were read but never handed out.
func (p *partState) dropQueued() {
	n := len(p.batches)
	for n > 0 && !p.batches[n-1].handed {
		n--
	}
	clear(p.batches[n:])
	p.batches = p.batches[:n]
}
