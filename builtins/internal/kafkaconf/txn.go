package kafkaconf

import (
	"errors"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/component"
)

// Txn is the transactional session that the Kafka source, sink and
// dead-letter sink of one exactly-once task share: a single franz-go client
// consumes in the group and produces inside the transaction, so the records
// written and the offsets consumed commit together.
//
// The sink registers its producer settings when it is built; the source,
// opened after the sinks, creates the session with them and its own
// consumer settings, and closes it. The sinks produce through Session.
type Txn struct {
	mu       sync.Mutex
	producer []kgo.Opt
	part     any   // the sink's partitioner, which the dead-letter sink consults
	batchMax int32 // the largest batch_max_bytes of the sinks sharing the producer
	sess     *kgo.GroupTransactSession
}

type txnKey struct{ task string }

// SharedTxn returns the Txn of task, creating it on first use.
func SharedTxn(shared *component.Shared, task string) (*Txn, error) {
	if shared == nil {
		return nil, errors.New("exactly_once needs the loader's shared registry (component.Env.Shared)")
	}
	v, err := shared.Get(txnKey{task}, func() (any, func() error, error) {
		return &Txn{}, nil, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Txn), nil
}

// SetProducer records the producer options of the task's sink and its
// partitioner. The last call wins; the sink is built before the
// dead-letter sink, which does not call it.
func (t *Txn) SetProducer(opts []kgo.Opt, partitioner any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.producer = opts
	t.part = partitioner
}

// NeedBatchBytes raises the producer's largest record batch to n: each
// sink sharing the producer checks its own batch_max_bytes per record, and
// the producer must take the largest.
func (t *Txn) NeedBatchBytes(n int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.batchMax = max(t.batchMax, n)
}

// Producer returns the sink's producer options (with the largest batch any
// sink needs) and partitioner, or nil when no Kafka sink registered.
func (t *Txn) Producer() ([]kgo.Opt, any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.producer == nil {
		return nil, t.part
	}
	opts := append(slices.Clone(t.producer), kgo.ProducerBatchMaxBytes(t.batchMax))
	return opts, t.part
}

// SetSession publishes the session the source opened (nil once closed).
func (t *Txn) SetSession(s *kgo.GroupTransactSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sess = s
}

// Session returns the open session, or nil before the source opened it or
// after it closed it.
func (t *Txn) Session() *kgo.GroupTransactSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sess
}
