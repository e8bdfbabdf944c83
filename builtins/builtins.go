// Package builtins lists the components compiled into Sluice. Registration
// is explicit: the core components in one list here, each connector family
// (Kafka, SQL databases, Redis, NATS, RabbitMQ, MQTT) in a file of its own
// (family_*.go) that a build tag leaves out, so a custom build drops what it
// does not need (go build -tags no_redis,no_sql; docs/edge.md).
package builtins

import (
	"github.com/sluicehq/sluice/builtins/filter"
	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/builtins/internal/deadletter"
	filesink "github.com/sluicehq/sluice/builtins/sink/file"
	httpsink "github.com/sluicehq/sluice/builtins/sink/http"
	"github.com/sluicehq/sluice/builtins/sink/stdout"
	filesource "github.com/sluicehq/sluice/builtins/source/file"
	"github.com/sluicehq/sluice/builtins/source/generate"
	httpsource "github.com/sluicehq/sluice/builtins/source/http"
	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/builtins/transform/complete"
	"github.com/sluicehq/sluice/builtins/transform/constant"
	"github.com/sluicehq/sluice/builtins/transform/function"
	"github.com/sluicehq/sluice/builtins/transform/partial"
	"github.com/sluicehq/sluice/builtins/transform/template"
	"github.com/sluicehq/sluice/builtins/transform/wasm"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/message"
)

// AllFamilies names every connector family, compiled in or not.
var AllFamilies = []string{"kafka", "sql", "redis", "nats", "rabbitmq", "mqtt"}

// family is a connector family compiled into this build: its family_*.go
// file adds it from init unless a build tag leaves the file out.
type family struct {
	name     string
	register func(*component.Registry)
}

var families []family

// Omitted returns the families this build leaves out (by build tags), in
// AllFamilies' order.
func Omitted() []string {
	var out []string
	for _, name := range AllFamilies {
		in := false
		for _, f := range families {
			in = in || f.name == name
		}
		if !in {
			out = append(out, name)
		}
	}
	return out
}

// RegisterAll adds every builtin component of this build to r.
func RegisterAll(r *component.Registry) {
	stdin.Register(r)
	generate.Register(r)
	filesource.Register(r)
	httpsource.Register(r)

	complete.Register(r)
	partial.Register(r)
	constant.Register(r)
	template.Register(r)
	wasm.Register(r)
	function.Register(r)

	stdout.Register(r)
	filesink.Register(r)
	httpsink.Register(r)

	for _, f := range families {
		f.register(r)
	}
}

// TaskChecks are the loader's cross-component checks (config.Loader.TaskChecks).
// Families add theirs (family_kafka.go).
var TaskChecks []func(*config.Task, *component.Problems)

// BuildFilter compiles a task's [filter] table for the config loader. The
// condition's string budget follows the task's largest event.
func BuildFilter(cfg *config.FilterConfig, maxEvent int, p *component.Problems) config.Filter {
	if cfg.ConditionBudget != 0 && cfg.Condition == "" {
		p.KeyErrorf([]string{"condition_budget"}, "condition_budget bounds a condition, and this filter has none: remove it or add a condition")
	}
	limits := condition.Limits{Steps: uint64(cfg.ConditionBudget), Bytes: uint64(maxEvent) * condition.BytesPerEventByte}
	f := filter.Build(cfg.Pattern, cfg.PatternJSON, cfg.Condition, limits, p)
	if f == nil {
		// A typed nil would look like a filter to the engine.
		return nil
	}
	return f
}

// DeadLetterEvent returns the event a replay of the dead-letter record rec
// runs through its task, as `sluice dlq replay` (the dlq source) makes it:
// a CloudEvent unchanged, a raw line that failed to decode wrapped as the
// auto line format would. pos is the record's place (a wrapped event's id
// derives from it). The admin console's replay is given it by the command.
func DeadLetterEvent(rec []byte, pos message.Position) ([]byte, error) {
	return deadletter.Event(rec, pos)
}
