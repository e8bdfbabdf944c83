package kafkaconf

import (
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/component"
)

// A task's Kafka dead-letter sink publishes its connection (brokers, SASL,
// TLS, client id) in the process's shared registry, so that a replay of
// its topic (`sluice dlq replay --from kafka://...`, which runs the task
// with a dlq source in place of its own) connects as the sink did: a
// dead-letter topic on a cluster that requires SASL or TLS could not be
// replayed otherwise.

type deadLetterKey struct{ task, topic string }

// deadLetterConn is what one dead-letter sink published.
type deadLetterConn struct {
	mu      sync.Mutex
	brokers []string
	opts    []kgo.Opt
}

// ShareDeadLetter publishes the connection of task's Kafka dead-letter sink,
// which writes topic ("" for a templated topic) on brokers; opts are its
// connection options (Conn.Options).
func ShareDeadLetter(shared *component.Shared, task, topic string, brokers []string, opts []kgo.Opt) {
	if shared == nil {
		return
	}
	v, err := shared.Get(deadLetterKey{task, topic}, func() (any, func() error, error) { return &deadLetterConn{}, nil, nil })
	if err != nil {
		return
	}
	c := v.(*deadLetterConn)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.brokers, c.opts = slices.Clone(brokers), slices.Clone(opts)
}

// DeadLetterOptions returns the connection options of task's Kafka
// dead-letter sink writing topic (or a templated topic) when it writes to
// one of brokers: credentials go only to the cluster they were given for.
func DeadLetterOptions(shared *component.Shared, task, topic string, brokers []string) ([]kgo.Opt, bool) {
	if shared == nil {
		return nil, false
	}
	for _, t := range []string{topic, ""} {
		v, err := shared.Get(deadLetterKey{task, t}, func() (any, func() error, error) { return &deadLetterConn{}, nil, nil })
		if err != nil {
			continue
		}
		c := v.(*deadLetterConn)
		c.mu.Lock()
		opts, mine := c.opts, slices.ContainsFunc(brokers, func(b string) bool { return slices.Contains(c.brokers, b) })
		c.mu.Unlock()
		if mine && opts != nil {
			return slices.Clone(opts), true
		}
	}
	return nil, false
}
