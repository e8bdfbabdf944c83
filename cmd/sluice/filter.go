package main

import (
	"github.com/sluicehq/sluice/builtins/filter"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// buildFilter compiles a task's [filter] table.
func buildFilter(cfg *config.FilterConfig, p *component.Problems) config.Filter {
	f := filter.Build(cfg.Pattern, cfg.PatternJSON, cfg.Condition, p)
	if f == nil {
		// A typed nil would look like a filter to the engine.
		return nil
	}
	return f
}
