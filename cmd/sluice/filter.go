package main

import (
	"errors"

	"github.com/sluicehq/sluice/builtins/filter/pattern"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

type patternFilter struct{ p *pattern.Pattern }

func (f patternFilter) Match(event []byte) (bool, error) { return f.p.Match(event), nil }

// buildFilter compiles a task's [filter] table, reporting problems with the
// positions of the pattern's values.
func buildFilter(cfg *config.FilterConfig, p *component.Problems) config.Filter {
	var pat *pattern.Pattern
	var err error
	switch {
	case cfg.Pattern != nil:
		pat, err = pattern.Compile(cfg.Pattern)
	case cfg.PatternJSON != "":
		pat, err = pattern.CompileJSON([]byte(cfg.PatternJSON))
	}
	var pe *pattern.Error
	if errors.As(err, &pe) {
		for _, pr := range pe.Problems {
			if cfg.Pattern != nil {
				p.Addf(append([]string{"pattern"}, pr.Path...), "%s", pr.Error())
			} else {
				p.AddAt([]string{"pattern_json"}, max(pr.Offset, 0), "%s", pr.Error())
			}
		}
		return nil
	} else if err != nil {
		p.Addf([]string{"pattern"}, "%v", err)
		return nil
	}
	if cfg.Condition != "" {
		p.Addf([]string{"condition"}, "conditions are not available yet in this build")
		return nil
	}
	if pat == nil || pat.MatchesAll() {
		return nil
	}
	return patternFilter{pat}
}
