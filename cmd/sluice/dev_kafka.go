//go:build devkafka

package main

import (
	"context"

	"github.com/sluicehq/sluice/builtins/kafkadev"
)

// startDevKafka serves the in-memory Kafka tests use (builtins/kafkadev).
func startDevKafka(ctx context.Context, o devKafkaOptions) (addrs []string, closeFn func(), err error) {
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Addr: o.Addr, Brokers: o.Brokers, Partitions: o.Partitions, Topics: o.Topics, AutoCreateTopics: o.AutoCreateTopics})
	if err != nil {
		return nil, nil, err
	}
	return c.Addrs(), c.Close, nil
}
