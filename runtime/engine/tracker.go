package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// errEarlierFailed nacks a batch whose lane holds an earlier batch that was
// not handled: committing it would skip the earlier one.
var errEarlierFailed = errors.New("an earlier batch of the same lane was not handled")

// tracker calls each source batch's Ack exactly once, in read order per
// lane, once the batch and every earlier batch of its lane are finished. It
// is the "commit only the contiguous prefix" rule of docs/delivery.md, kept in
// one place so that sources can commit whatever they are acked.
type tracker struct {
	mu      sync.Mutex
	lanes   map[string]*lane
	release func() // frees one in-flight slot per finished batch
	// onNack, when set, is called with each batch acked with an error,
	// before its ack.
	onNack  func(p *pending)
	pending int // batches added and not acked
	nacks   int // batches acked with an error since the last takeNacks
	idle    chan struct{}
}

type lane struct {
	name       string
	head, tail *pending
	acking     bool  // a goroutine is calling this lane's acks
	failed     error // set once a batch of the lane was nacked
}

type pending struct {
	ack   func(error)
	parts int // outstanding parts (sub-batches on different workers)
	done  bool
	err   error
	next  *pending
	// counted is what the batch's settled parts added to the task's
	// counters: taken off again if the batch is nacked (read again).
	counted struct{ delivered, filtered, deadLettered, dropped atomic.Uint64 }
}

func newTracker(release func()) *tracker {
	return &tracker{lanes: map[string]*lane{}, release: release}
}

// add registers a batch read from laneName with parts sub-batches. It must
// be called in read order.
func (t *tracker) add(laneName string, ack func(error), parts int) *pending {
	p := &pending{ack: ack, parts: parts}
	t.mu.Lock()
	l := t.lanes[laneName]
	if l == nil {
		l = &lane{name: laneName}
		t.lanes[laneName] = l
	}
	if l.tail == nil {
		l.head, l.tail = p, p
	} else {
		l.tail.next, l.tail = p, p
	}
	t.pending++
	t.mu.Unlock()
	return p
}

// waitIdle blocks until every batch added so far was acked, or ctx ends.
func (t *tracker) waitIdle(ctx context.Context) error {
	t.mu.Lock()
	if t.pending == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	ch := t.idle
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeNacks returns the number of batches nacked since the last call.
func (t *tracker) takeNacks() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nacks
	t.nacks = 0
	return n
}

// finish reports that one part of p is over. err != nil means the part's
// records were not handled (the task is stopping or blocked).
func (t *tracker) finish(laneName string, p *pending, err error) {
	t.mu.Lock()
	l := t.lanes[laneName]
	if l == nil || p.parts <= 0 {
		t.mu.Unlock()
		panic(fmt.Sprintf("engine: batch of lane %q finished more often than it has parts", laneName))
	}
	if err != nil && p.err == nil {
		p.err = err
	}
	p.parts--
	if p.parts > 0 {
		t.mu.Unlock()
		return
	}
	p.done = true
	if l.acking {
		// The goroutine acking this lane will pick p up.
		t.mu.Unlock()
		return
	}
	l.acking = true
	for {
		var ready []*pending
		for l.head != nil && l.head.done {
			q := l.head
			l.head = q.next
			if l.head == nil {
				l.tail = nil
			}
			if q.err != nil && l.failed == nil {
				l.failed = q.err
			} else if q.err == nil && l.failed != nil {
				q.err = fmt.Errorf("%w: %v", errEarlierFailed, l.failed)
			}
			ready = append(ready, q)
		}
		if len(ready) == 0 {
			l.acking = false
			if l.head == nil {
				delete(t.lanes, laneName)
			}
			t.mu.Unlock()
			return
		}
		// Acks run outside the lock (a checkpoint may fsync) but in order:
		// no other goroutine acks this lane while acking is set.
		t.mu.Unlock()
		for _, q := range ready {
			if q.err != nil && t.onNack != nil {
				t.onNack(q)
			}
			if q.ack != nil {
				q.ack(q.err)
			}
			if t.release != nil {
				t.release()
			}
		}
		t.mu.Lock()
		for _, q := range ready {
			if q.err != nil {
				t.nacks++
			}
		}
		t.pending -= len(ready)
		if t.pending == 0 && t.idle != nil {
			close(t.idle)
			t.idle = nil
		}
	}
}

// outstanding counts batches not acked yet.
func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.lanes {
		for p := l.head; p != nil; p = p.next {
			n++
		}
	}
	return n
}
