//go:build !no_brokers && !no_nats

package builtins

import (
	natssink "github.com/sluicehq/sluice/builtins/sink/nats"
	natssource "github.com/sluicehq/sluice/builtins/source/nats"
	"github.com/sluicehq/sluice/runtime/component"
)

// The nats family: nATS and JetStream source and sink: nats.go. A build with -tags
// no_brokers or no_nats leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "nats", register: func(r *component.Registry) {
		natssource.Register(r)
		natssink.Register(r)
	}})
}
