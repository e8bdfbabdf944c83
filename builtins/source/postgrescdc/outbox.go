package postgrescdc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// outbox sits between the goroutine that decodes changes (the snapshot,
// then the replication stream) and Read, and decides what may be
// committed.
//
// Changes are appended to an open batch per lane (table) and sealed when
// full or when Read finds nothing sealed, so batches grow while the engine
// is busy and stay small while it waits. Every batch gets a sequence
// number when it opens; acknowledgements arrive in any order across lanes,
// and prefix is the highest number below which every batch was
// acknowledged. A mark ties a position to the batches opened before it: a
// transaction's end LSN (or an idle keepalive's WAL end) to the last batch
// that may hold its changes, a snapshot chunk's progress to the last batch
// holding its rows. A mark is committed when prefix reaches it, so the
// slot's confirmed LSN never passes a transaction with a change not yet
// handled.
type outbox struct {
	mu        sync.Mutex
	space     *sync.Cond    // the decoder waits here for room
	ready     chan struct{} // cap 1: a batch may be available for Read
	maxEvents int
	maxQueued int // sealed batches waiting for Read before the decoder waits

	gen       uint64 // bumped by reset: acks of older batches are ignored
	seq       uint64 // last batch number given out
	prefix    uint64 // batches 1..prefix are acknowledged
	done      map[uint64]struct{}
	marks     []mark
	open      map[string]*pending
	sealed    []*pending
	inTxn     bool  // the decoder is inside a transaction: open batches wait for its commit
	failed    bool  // a batch was nacked: nothing advances until reset
	closed    bool  // no more batches are handed out
	fatal     error // returned by every Read
	transient error // returned by the next Read

	confirmed uint64       // highest LSN committed by a mark
	onMark    func(m mark) // called under mu when a mark is committed

	// Batches acknowledged, whose memory serves new ones (the engine reads
	// nothing of a batch it acknowledged), and the arena size a new batch
	// starts with, learnt from the full ones: an arena grown event by
	// event would be copied over and over (a fifth of the decoder's time
	// when measured).
	free      []*pending
	arenaHint int
}

// mark is a position committed once every batch up to seq is handled.
type mark struct {
	seq      uint64
	lsn      uint64    // stream: confirm up to here (0: none)
	progress *progress // snapshot: checkpoint this
}

// pending is a batch being filled or waiting to be read.
type pending struct {
	seq   uint64
	gen   uint64
	lane  string
	arena []byte
	recs  []rec
	msgs  []message.Message // the batch handed out (reused with the rest)
}

// rec locates one event in its batch's arena.
type rec struct {
	from, to       int // payload
	keyFrom, keyTo int
	tsMs           int64
	pos            message.Position
}

const maxBatchBytes = 4 << 20

func newOutbox(maxEvents int) *outbox {
	o := &outbox{
		ready:     make(chan struct{}, 1),
		maxEvents: maxEvents,
		maxQueued: 4,
		done:      map[uint64]struct{}{},
		open:      map[string]*pending{},
	}
	o.space = sync.NewCond(&o.mu)
	return o
}

// batch returns the open batch of lane, opening one. Called with mu held.
func (o *outbox) batch(lane string) *pending {
	if b := o.open[lane]; b != nil {
		return b
	}
	o.seq++
	var b *pending
	if n := len(o.free); n > 0 {
		b = o.free[n-1]
		o.free[n-1] = nil
		o.free = o.free[:n-1]
	} else {
		b = &pending{}
	}
	b.seq, b.gen, b.lane = o.seq, o.gen, lane
	if cap(b.arena) < o.arenaHint {
		b.arena = make([]byte, 0, o.arenaHint)
	}
	o.open[lane] = b
	return b
}

// maxFree bounds the batches kept for reuse.
const maxFree = 8

// recycle keeps the memory of a batch the engine acknowledged.
func (o *outbox) recycle(b *pending) {
	clear(b.msgs) // drop the references into the arena
	b.arena, b.recs, b.msgs = b.arena[:0], b.recs[:0], b.msgs[:0]
	o.mu.Lock()
	if len(o.free) < maxFree {
		o.free = append(o.free, b)
	}
	o.mu.Unlock()
}

// added is called with mu held after an event was appended to b: it seals
// b when full and wakes Read. It reports whether the decoder should wait
// for room (waitRoom) before the next event.
func (o *outbox) added(b *pending) bool {
	if len(b.recs) >= o.maxEvents || len(b.arena) >= maxBatchBytes {
		o.seal(b)
	}
	if len(b.recs) == 1 || len(o.sealed) > 0 {
		o.wake()
	}
	return len(o.sealed) >= o.maxQueued
}

func (o *outbox) seal(b *pending) {
	if n := len(b.arena); len(b.recs) >= o.maxEvents || n > o.arenaHint {
		o.arenaHint = min(n+n/8, maxBatchBytes+maxBatchBytes/8)
	}
	delete(o.open, b.lane)
	o.sealed = append(o.sealed, b)
}

func (o *outbox) wake() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// waitRoom blocks the decoder while enough sealed batches wait for Read.
// It returns false when the outbox was closed.
func (o *outbox) waitRoom() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.sealed) >= o.maxQueued && !o.closed {
		o.space.Wait()
	}
	return !o.closed
}

// addMark registers a position to commit after every batch opened so far.
// Idle keepalives coalesce with the previous LSN mark of the same batch.
func (o *outbox) addMark(m mark) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.addMarkLocked(m)
}

func (o *outbox) addMarkLocked(m mark) {
	m.seq = o.seq
	if n := len(o.marks); n > 0 && m.progress == nil && o.marks[n-1].progress == nil && o.marks[n-1].seq == m.seq {
		if m.lsn > o.marks[n-1].lsn {
			o.marks[n-1].lsn = m.lsn
		}
	} else {
		o.marks = append(o.marks, m)
	}
	o.advance()
}

// setTxn records whether the decoder is inside a transaction; a commit
// registers its mark in the same step.
func (o *outbox) setTxn(in bool, commit *mark) {
	o.mu.Lock()
	o.inTxn = in
	if commit != nil {
		o.addMarkLocked(*commit)
	}
	o.mu.Unlock()
	if !in {
		o.wake()
	}
}

// ack records the fate of batch seq of generation gen.
func (o *outbox) ack(gen, seq uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if gen != o.gen {
		return // read before a reconnect: the stream delivers it again
	}
	if err != nil {
		o.failed = true
		return
	}
	o.done[seq] = struct{}{}
	o.advance()
}

// advance moves prefix over acknowledged batches and commits the marks it
// passes. Called with mu held.
func (o *outbox) advance() {
	if o.failed {
		return
	}
	for {
		if _, ok := o.done[o.prefix+1]; !ok {
			break
		}
		delete(o.done, o.prefix+1)
		o.prefix++
	}
	i := 0
	for ; i < len(o.marks) && o.marks[i].seq <= o.prefix; i++ {
		m := o.marks[i]
		if m.lsn > o.confirmed {
			o.confirmed = m.lsn
		}
		if o.onMark != nil {
			o.onMark(m)
		}
	}
	if i > 0 {
		o.marks = append(o.marks[:0], o.marks[i:]...)
	}
}

// position returns the confirmed LSN.
func (o *outbox) position() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.confirmed
}

// reset forgets every batch not acknowledged (a reconnect or rewind: the
// stream is read again from the confirmed position) and returns that
// position.
func (o *outbox) reset() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	o.prefix = o.seq
	clear(o.done)
	clear(o.open)
	o.sealed = o.sealed[:0]
	o.marks = o.marks[:0]
	o.failed = false
	o.inTxn = false
	o.space.Broadcast()
	return o.confirmed
}

// setErr reports a failure of the decoder: fatal ends every later Read,
// a transient one is returned by the next Read only.
func (o *outbox) setErr(err error, fatal bool) {
	o.mu.Lock()
	if fatal {
		o.fatal = err
	} else {
		o.transient = err
	}
	o.mu.Unlock()
	o.wake()
}

// close makes Read return and unblocks the decoder.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.space.Broadcast()
	o.mu.Unlock()
	o.wake()
}

var errClosed = errors.New("postgres_cdc: source closed")

// read returns the next batch, waiting for one.
func (o *outbox) read(ctx context.Context) (component.Batch, error) {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return component.Batch{}, errClosed
		}
		if o.fatal != nil {
			err := o.fatal
			o.mu.Unlock()
			return component.Batch{}, err
		}
		if o.transient != nil {
			err := o.transient
			o.transient = nil
			o.mu.Unlock()
			return component.Batch{}, component.Retryable(err, 0)
		}
		if len(o.sealed) == 0 && len(o.open) > 0 && !o.inTxn {
			// Hand out what there is rather than wait for batches to fill:
			// they fill by themselves while the engine is busy. Only
			// between transactions, so that a change handed out has its
			// commit registered: acknowledging it then lets the position
			// pass it.
			for _, b := range o.openInOrder() {
				o.seal(b)
			}
		}
		if len(o.sealed) > 0 {
			b := o.sealed[0]
			o.sealed = append(o.sealed[:0], o.sealed[1:]...)
			o.space.Broadcast()
			o.mu.Unlock()
			return o.toBatch(b), nil
		}
		o.mu.Unlock()
		select {
		case <-o.ready:
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		}
	}
}

// openInOrder returns the open batches oldest first, so that lanes take
// turns. Called with mu held.
func (o *outbox) openInOrder() []*pending {
	out := make([]*pending, 0, len(o.open))
	for _, b := range o.open {
		out = append(out, b)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].seq < out[j-1].seq; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (o *outbox) toBatch(b *pending) component.Batch {
	if cap(b.msgs) < len(b.recs) {
		b.msgs = make([]message.Message, len(b.recs))
	}
	msgs := b.msgs[:len(b.recs)]
	b.msgs = msgs
	for i, r := range b.recs {
		p := b.arena[r.from:r.to:r.to]
		msgs[i] = message.Message{Payload: p, Event: p, Time: time.UnixMilli(r.tsMs), Pos: r.pos}
		if r.keyTo > r.keyFrom {
			msgs[i].Key = b.arena[r.keyFrom:r.keyTo:r.keyTo]
		}
	}
	gen, seq := b.gen, b.seq
	// Ack is called once; a second call must not put b's memory twice in
	// the free list (two batches would share it).
	var once atomic.Bool
	return component.Batch{Messages: msgs, Lane: b.lane, Ack: func(err error) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		o.ack(gen, seq, err)
		o.recycle(b)
	}}
}
