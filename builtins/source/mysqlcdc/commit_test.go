package mysqlcdc

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestCommitPastForeignTransactions: a transaction without changes of the
// captured tables (another table's) read while changes are in flight
// commits once they are acknowledged, and so do the transactions after
// it. It used to stay queued unclosed, so that the position never moved
// again until a restart (which then read everything since again).
func TestCommitPastForeignTransactions(t *testing.T) {
	s := &Source{log: zerolog.Nop(), gtids: map[uint32]binlog.GTID{}, kick: make(chan struct{}, 1)}
	newTxn := func(seq uint64, end uint32) *txn {
		return &txn{gtids: []binlog.GTID{{Domain: 0, ServerID: 1, Seq: seq}}, file: "bin.1", end: end}
	}
	ours := newTxn(10, 100)
	ours.rows, ours.pending = 1, 1
	s.track(ours)
	s.closeTxn(ours)
	s.passEmpty(newTxn(11, 200)) // another table's, while ours is in flight
	s.passEmpty(newTxn(12, 300)) // and another
	later := newTxn(13, 400)
	later.rows, later.pending = 1, 1
	s.track(later)
	s.closeTxn(later)
	if s.pos != 0 {
		t.Fatalf("position %d before any acknowledgement", s.pos)
	}
	s.ackTxns([]*txn{ours}, nil)
	if s.pos != 300 || s.gtids[0].Seq != 12 {
		t.Fatalf("after the first ack: position %d gtid %v, want 300 and 0-1-12", s.pos, s.gtids[0])
	}
	s.ackTxns([]*txn{later}, nil)
	if s.pos != 400 || s.gtids[0].Seq != 13 || len(s.txns) != 0 {
		t.Fatalf("after the second ack: position %d gtid %v, %d txns queued; want 400, 0-1-13, none", s.pos, s.gtids[0], len(s.txns))
	}
}

// TestCloseAwaitsTransactionEnd: Close lets the reader go on to the end of
// a transaction whose changes were all acknowledged before it ended (a
// batch filled up inside it), so that a graceful stop commits it; it
// stops waiting when the reader reads more changes of it, which will not
// be acknowledged any more.
func TestCloseAwaitsTransactionEnd(t *testing.T) {
	s := &Source{log: zerolog.Nop(), gtids: map[uint32]binlog.GTID{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	head := &txn{gtids: []binlog.GTID{{Domain: 0, ServerID: 1, Seq: 7}}, file: "bin.1", end: 700, rows: 7, pending: 1}
	s.track(head)
	s.ackTxns([]*txn{head}, nil)
	waited := startAwaitEnds(t, s)
	select {
	case <-waited:
		t.Fatal("Close did not wait for the end of the acknowledged transaction")
	default:
	}
	s.closeTxn(head) // the reader reads the XID
	<-waited
	if s.pos != 700 {
		t.Fatalf("position %d after the end was read, want 700", s.pos)
	}

	// More changes of the transaction read: they will not be acknowledged,
	// so there is nothing to wait for.
	next := &txn{gtids: []binlog.GTID{{Domain: 0, ServerID: 1, Seq: 8}}, file: "bin.1", end: 800, rows: 7, pending: 1}
	s.track(next)
	s.ackTxns([]*txn{next}, nil)
	waited = startAwaitEnds(t, s)
	s.mu.Lock()
	next.pending++ // as rowsEvent does for a new batch
	s.wakeLocked()
	s.mu.Unlock()
	<-waited
	if s.pos != 700 {
		t.Fatalf("position %d, want 700: the second transaction was not acknowledged", s.pos)
	}
}

// startAwaitEnds runs s.awaitEnds as Close does, returns once it waits for
// a transaction's end, and gives the channel closed when it returns.
func startAwaitEnds(t *testing.T, s *Source) chan struct{} {
	t.Helper()
	waited := make(chan struct{})
	go func() {
		s.awaitEnds(context.Background())
		close(waited)
	}()
	testkit.WaitFor(t, "Close to wait for the end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.endWait != nil
	})
	return waited
}
