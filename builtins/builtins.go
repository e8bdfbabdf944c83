// Package builtins lists the components compiled into Sluice. Registration
// is explicit, one list in one place: a test can build a registry with only
// what it needs, and a custom build can drop what it does not.
package builtins

import (
	"github.com/sluicehq/sluice/builtins/filter"
	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	filesink "github.com/sluicehq/sluice/builtins/sink/file"
	httpsink "github.com/sluicehq/sluice/builtins/sink/http"
	kafkasink "github.com/sluicehq/sluice/builtins/sink/kafka"
	mqttsink "github.com/sluicehq/sluice/builtins/sink/mqtt"
	mysqlsink "github.com/sluicehq/sluice/builtins/sink/mysql"
	natssink "github.com/sluicehq/sluice/builtins/sink/nats"
	pgsink "github.com/sluicehq/sluice/builtins/sink/postgres"
	rabbitmqsink "github.com/sluicehq/sluice/builtins/sink/rabbitmq"
	redissink "github.com/sluicehq/sluice/builtins/sink/redis"
	"github.com/sluicehq/sluice/builtins/sink/stdout"
	"github.com/sluicehq/sluice/builtins/source/dlq"
	filesource "github.com/sluicehq/sluice/builtins/source/file"
	"github.com/sluicehq/sluice/builtins/source/generate"
	httpsource "github.com/sluicehq/sluice/builtins/source/http"
	kafkasource "github.com/sluicehq/sluice/builtins/source/kafka"
	mqttsource "github.com/sluicehq/sluice/builtins/source/mqtt"
	"github.com/sluicehq/sluice/builtins/source/mysqlcdc"
	natssource "github.com/sluicehq/sluice/builtins/source/nats"
	"github.com/sluicehq/sluice/builtins/source/postgrescdc"
	rabbitmqsource "github.com/sluicehq/sluice/builtins/source/rabbitmq"
	redissource "github.com/sluicehq/sluice/builtins/source/redis"
	"github.com/sluicehq/sluice/builtins/source/sqlsource"
	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/builtins/transform/complete"
	"github.com/sluicehq/sluice/builtins/transform/constant"
	"github.com/sluicehq/sluice/builtins/transform/function"
	"github.com/sluicehq/sluice/builtins/transform/partial"
	"github.com/sluicehq/sluice/builtins/transform/template"
	"github.com/sluicehq/sluice/builtins/transform/wasm"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// RegisterAll adds every builtin component to r.
func RegisterAll(r *component.Registry) {
	stdin.Register(r)
	generate.Register(r)
	filesource.Register(r)
	dlq.Register(r)
	httpsource.Register(r)
	kafkasource.Register(r)
	natssource.Register(r)
	redissource.Register(r)
	rabbitmqsource.Register(r)
	mqttsource.Register(r)
	mysqlcdc.Register(r)
	postgrescdc.Register(r)
	sqlsource.Register(r)

	complete.Register(r)
	partial.Register(r)
	constant.Register(r)
	template.Register(r)
	wasm.Register(r)
	function.Register(r)

	stdout.Register(r)
	filesink.Register(r)
	httpsink.Register(r)
	kafkasink.Register(r)
	natssink.Register(r)
	redissink.Register(r)
	rabbitmqsink.Register(r)
	mqttsink.Register(r)
	pgsink.Register(r)
	mysqlsink.Register(r)
}

// TaskChecks are the loader's cross-component checks (config.Loader.TaskChecks).
var TaskChecks = []func(*config.Task, *component.Problems){
	kafkaconf.CheckExactlyOnce,
}

// BuildFilter compiles a task's [filter] table for the config loader.
func BuildFilter(cfg *config.FilterConfig, p *component.Problems) config.Filter {
	f := filter.Build(cfg.Pattern, cfg.PatternJSON, cfg.Condition, p)
	if f == nil {
		// A typed nil would look like a filter to the engine.
		return nil
	}
	return f
}
