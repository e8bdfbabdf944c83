//go:build !no_brokers && !no_rabbitmq

package builtins

import (
	rabbitmqsink "github.com/sluicehq/sluice/builtins/sink/rabbitmq"
	rabbitmqsource "github.com/sluicehq/sluice/builtins/source/rabbitmq"
	"github.com/sluicehq/sluice/runtime/component"
)

// The rabbitmq family: rabbitMQ (AMQP 0-9-1) source and sink: amqp091-go. A build with -tags
// no_brokers or no_rabbitmq leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "rabbitmq", register: func(r *component.Registry) {
		rabbitmqsource.Register(r)
		rabbitmqsink.Register(r)
	}})
}
