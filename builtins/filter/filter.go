// Package filter is the filter stage of a task: an event pattern
// (builtins/filter/pattern) and an expr condition (builtins/filter/
// condition), ANDed. The pattern runs first because it is cheap (no
// decoding, no allocation); the condition runs only on events the
// pattern let through.
package filter

import (
	"context"
	"errors"

	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/builtins/filter/pattern"
	"github.com/sluicehq/sluice/runtime/component"
)

// Filter decides whether an event goes on. A nil *Filter, or one with
// neither a pattern nor a condition, lets every event through. It is safe
// for concurrent use.
type Filter struct {
	pattern *pattern.Pattern
	cond    *condition.Condition
}

// New combines a compiled pattern and condition; either may be nil.
func New(p *pattern.Pattern, c *condition.Condition) *Filter {
	if p != nil && p.MatchesAll() {
		p = nil
	}
	return &Filter{pattern: p, cond: c}
}

// Match reports whether the event passes. The error is the condition's
// run-time failure on this event (a *condition.RuntimeError): the engine
// counts it and sends the event to the dead-letter queue at stage filter.
// A pattern never fails: an event it cannot use does not match. A
// condition stops when ctx ends, with an error wrapping ctx.Err().
func (f *Filter) Match(ctx context.Context, event []byte) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.pattern != nil && !f.pattern.Match(event) {
		return false, nil
	}
	if f.cond != nil {
		return f.cond.EvalContext(ctx, event)
	}
	return true, nil
}

// Build compiles a [filter] table for the config loader: pattern is the
// [filter.pattern] tree (nil when absent), patternJSON the pattern_json
// text ("" when absent), cond the condition ("" when absent) and limits
// what one evaluation of it may take (zero fields: the defaults). Every
// problem goes to p, which is rooted at the filter table: pattern problems
// at ["pattern", <path in the pattern>...], pattern_json problems at
// ["pattern_json"] with the byte offset inside the JSON text, condition
// problems at ["condition"] with the byte offset inside the expression.
// It returns nil when there were problems.
func Build(pat map[string]any, patternJSON, cond string, limits condition.Limits, p *component.Problems) *Filter {
	before := p.Len()
	var pt *pattern.Pattern
	switch {
	case pat != nil && patternJSON != "":
		p.KeyErrorf([]string{"pattern_json"}, "pattern and pattern_json are exclusive: give the pattern in one form")
	case pat != nil:
		var err error
		if pt, err = pattern.Compile(pat); err != nil {
			addPatternProblems(p, err, []string{"pattern"}, false)
		}
	case patternJSON != "":
		var err error
		if pt, err = pattern.CompileJSON([]byte(patternJSON)); err != nil {
			addPatternProblems(p, err, []string{"pattern_json"}, true)
		}
	}
	var c *condition.Condition
	if cond != "" {
		var err error
		if c, err = condition.CompileLimits(cond, limits); err != nil {
			var ce *condition.CompileError
			if errors.As(err, &ce) {
				p.AddAt([]string{"condition"}, ce.Offset, "invalid condition: %s", ce.Msg)
			} else {
				p.Addf([]string{"condition"}, "invalid condition: %v", err)
			}
		}
	}
	if p.Len() > before {
		return nil
	}
	return New(pt, c)
}

func addPatternProblems(p *component.Problems, err error, base []string, inText bool) {
	var pe *pattern.Error
	if !errors.As(err, &pe) {
		p.Addf(base, "%v", err)
		return
	}
	for _, pr := range pe.Problems {
		path := append([]string(nil), base...)
		off := -1
		if inText {
			off = pr.Offset
		} else {
			path = append(path, pr.Path...)
		}
		p.Add(component.Problem{Path: path, Offset: off, Msg: pr.Error()})
	}
}
