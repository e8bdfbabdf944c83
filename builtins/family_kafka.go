//go:build !no_kafka

package builtins

import (
	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	kafkasink "github.com/sluicehq/sluice/builtins/sink/kafka"
	"github.com/sluicehq/sluice/builtins/source/dlq"
	kafkasource "github.com/sluicehq/sluice/builtins/source/kafka"
	"github.com/sluicehq/sluice/runtime/component"
)

// The kafka family: kafka source and sink, the dlq source (it replays dead letters from Kafka too) and the exactly-once check: franz-go. A build with -tags
// no_kafka leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "kafka", register: func(r *component.Registry) {
		kafkasource.Register(r)
		dlq.Register(r)
		kafkasink.Register(r)
	}})
	TaskChecks = append(TaskChecks, kafkaconf.CheckExactlyOnce)
}
