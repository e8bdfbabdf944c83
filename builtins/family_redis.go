//go:build !no_brokers && !no_redis

package builtins

import (
	redissink "github.com/sluicehq/sluice/builtins/sink/redis"
	redissource "github.com/sluicehq/sluice/builtins/source/redis"
	"github.com/sluicehq/sluice/runtime/component"
)

// The redis family: redis source and sink: redigo. A build with -tags
// no_brokers or no_redis leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "redis", register: func(r *component.Registry) {
		redissource.Register(r)
		redissink.Register(r)
	}})
}
