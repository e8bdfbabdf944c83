package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// tp names a topic-partition.
type tp struct {
	topic string
	part  int32
}

// partState tracks the batches read from one partition during one
// assignment, in read order, until their offsets are committed: those
// handed to the engine (acknowledged or not) first, then those still
// queued. mark is one past the last record of the longest prefix of
// batches acknowledged without error, the offset that may be committed. A
// batch acknowledged with an error stops the prefix for good (until a
// rewind): the engine halted on it and nothing after it may be committed.
//
// A partition that is revoked or lost gets a new partState if it comes
// back, so acknowledgements of the old assignment never mix with the new.
// All fields are guarded by Source.mu.
type partState struct {
	tp
	lane      string
	batches   []*pending // read order; not yet committed
	prefix    int        // batches[:prefix] are acknowledged
	mark      kgo.EpochOffset
	marked    bool  // mark is set
	committed int64 // last offset known committed; -1: none
	// seeks counts the operator's Seeks: a commit sent before one must not
	// record its offset as committed once it returns (commit).
	seeks    uint64
	failed   bool  // a batch was nacked
	dead     bool  // revoked or lost
	lag      int64 // records after the last one read, at the last fetch
	lagKnown bool
}

func newPartState(k tp, lane string) *partState {
	return &partState{tp: k, lane: lane, committed: -1}
}

// pending is one batch read from a partition.
type pending struct {
	first  kgo.EpochOffset // the first record's epoch and offset
	last   kgo.EpochOffset // the last record's epoch and offset + 1
	n      int             // records
	handed bool            // returned by Read (else still queued)
	done   bool            // acknowledged without error
}

// add registers a batch of recs (in offset order).
func (p *partState) add(recs []*kgo.Record) *pending {
	f, l := recs[0], recs[len(recs)-1]
	b := &pending{
		first: kgo.EpochOffset{Epoch: f.LeaderEpoch, Offset: f.Offset},
		last:  kgo.EpochOffset{Epoch: l.LeaderEpoch, Offset: l.Offset + 1},
		n:     len(recs),
	}
	p.batches = append(p.batches, b)
	return b
}

// addRange registers a batch of n events covering the offsets from first
// up to (not including) next, read without records (a batch that could
// not be decompressed).
func (p *partState) addRange(first, next kgo.EpochOffset, n int) *pending {
	b := &pending{first: first, last: next, n: n}
	p.batches = append(p.batches, b)
	return b
}

// ack records the fate of b and advances the acknowledged prefix. It
// returns the records the prefix grew by.
func (p *partState) ack(b *pending, err error) int {
	if p.dead {
		return 0
	}
	if err != nil {
		p.failed = true
		return 0
	}
	b.done = true
	if p.failed {
		return 0
	}
	grew := 0
	for p.prefix < len(p.batches) && p.batches[p.prefix].done {
		q := p.batches[p.prefix]
		p.mark, p.marked = q.last, true
		grew += q.n
		p.prefix++
	}
	return grew
}

// toCommit reports the offset to commit, if the prefix moved past what is
// known committed.
func (p *partState) toCommit() (kgo.EpochOffset, bool) {
	if !p.marked || p.mark.Offset <= p.committed {
		return kgo.EpochOffset{}, false
	}
	return p.mark, true
}

// committedTo records that off is committed and forgets the batches it
// covers. It returns the records forgotten (all of them acknowledged).
func (p *partState) committedTo(off int64) int {
	if off > p.committed {
		p.committed = off
	}
	n, gone := 0, 0
	for n < p.prefix && p.batches[n].last.Offset <= off {
		gone += p.batches[n].n
		n++
	}
	if n > 0 {
		clear(p.batches[:n])
		p.batches = p.batches[n:]
		p.prefix -= n
	}
	return gone
}

// inFlight reports whether batches handed to the engine are unacknowledged
// (and can still complete the prefix).
func (p *partState) inFlight() bool {
	if p.failed {
		return false
	}
	for _, b := range p.batches[p.prefix:] {
		if b.handed && !b.done {
			return true
		}
	}
	return false
}

// counts returns the records handed out and not committed, and those of
// them acknowledged.
func (p *partState) counts() (handed, acked int) {
	for i, b := range p.batches {
		if !b.handed {
			break
		}
		handed += b.n
		if i < p.prefix {
			acked += b.n
		}
	}
	return handed, acked
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

// rewindTo forgets every batch not committed and returns where reading
// must resume so that none of their records is skipped: the end of the
// acknowledged prefix, else the first batch's first record. ok is false
// when nothing was read since the last commit.
func (p *partState) rewindTo() (at kgo.EpochOffset, ok bool) {
	switch {
	case len(p.batches) == 0:
	case p.prefix > 0:
		at, ok = p.mark, true
	default:
		at, ok = p.batches[0].first, true
	}
	clear(p.batches)
	p.batches = p.batches[:0]
	p.prefix = 0
	p.failed = false
	return at, ok
}

// abort forgets everything read since the last commit, acknowledged or
// not: an aborted transaction undid it all.
func (p *partState) abort() {
	clear(p.batches)
	p.batches = p.batches[:0]
	p.prefix = 0
	p.failed = false
	p.marked = false
}
