// Package sinktpl compiles the `${name}` templates of a sink's config
// (subjects, stream names, keys, headers, fields) against its `variables`
// table and reports every problem at the key it belongs to, as the kafka
// sink does: a variable's problem once, at variables.NAME; a template's at
// its key with the byte offset.
package sinktpl

import (
	"errors"
	"regexp"
	"strings"

	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
)

// Compiler compiles the templates of one config. Problems go to P (nil:
// only the result counts).
type Compiler struct {
	Vars     map[string]string
	P        *component.Problems
	OK       bool
	reported map[string]bool
}

// New returns a Compiler over vars reporting to p (which may be nil).
func New(vars map[string]string, p *component.Problems) *Compiler {
	return &Compiler{Vars: vars, P: p, OK: true, reported: map[string]bool{}}
}

var placeholderRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// Compile compiles text, the value at key. strict rejects a placeholder
// that names no variable: left in the output as written, it can only be a
// mistake in a name (a subject, a key). It returns nil on a problem.
func (c *Compiler) Compile(key []string, text string, strict bool) *template.Template {
	if strict {
		for _, m := range placeholderRE.FindAllStringSubmatchIndex(text, -1) {
			name := text[m[2]:m[3]]
			for _, f := range []string{"jsonEscape(", "htmlEscape("} {
				if inner, found := strings.CutPrefix(name, f); found && strings.HasSuffix(inner, ")") {
					name = strings.TrimSuffix(inner, ")")
				}
			}
			if _, known := c.Vars[name]; !known {
				c.OK = false
				if c.P != nil {
					c.P.AddAt(key, m[0], "unknown variable %q in ${...}: define it in variables (e.g. %s = \"$.data.key\")", name, name)
				}
			}
		}
	}
	t, err := template.Compile(text, c.Vars)
	if err == nil {
		return t
	}
	c.OK = false
	var es template.Errors
	if !errors.As(err, &es) {
		if c.P != nil {
			c.P.Addf(key, "%v", err)
		}
		return nil
	}
	for _, e := range es {
		switch {
		case c.P == nil:
		case e.Var == "":
			c.P.AddAt(key, e.Offset, "%s: %s", e.Code, e.Msg)
		case !c.reported[e.Var]:
			c.reported[e.Var] = true
			c.P.AddAt([]string{"variables", e.Var}, e.Offset, "%s: %s", e.Code, e.Msg)
		}
	}
	return nil
}

// Fixed reports whether text holds no placeholder, so that it can be used
// as it is without rendering.
func Fixed(text string) bool { return !strings.Contains(text, "${") }
