package kafkaconf

import (
	"errors"
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
	part     any // the sink's partitioner, which the dead-letter sink consults
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

// Producer returns the sink's producer options and partitioner, or nil when
// no Kafka sink registered.
func (t *Txn) Producer() ([]kgo.Opt, any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.producer, t.part
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
