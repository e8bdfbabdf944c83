// Package sinktpl compiles the templates of a sink's config (a topic, a
// routing key, headers) over the original source event, reporting problems
// where the user wrote them: the template text at its offset, a variable's
// JSONPath under variables.<name>.
package sinktpl

import (
	"errors"
	"regexp"
	"strings"

	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
)

// Compiler compiles templates sharing one variables table. Problems go to P
// (nil: not reported); OK turns false on the first problem.
type Compiler struct {
	Vars map[string]string
	P    *component.Problems
	OK   bool
	// MaxEvent is the task's event limit (component.Env.MaxEvent; 0: the
	// default): a render over template.OutputLimit(MaxEvent) fails.
	MaxEvent int
	reported map[string]bool // variables are shared: each is reported once
}

// New returns a Compiler over vars reporting to p (which may be nil).
func New(vars map[string]string, p *component.Problems) *Compiler {
	return &Compiler{Vars: vars, P: p, OK: true, reported: map[string]bool{}}
}

var placeholderRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// Field is a compiled template that may be a fixed text.
type Field struct {
	T *template.Template
	// Fixed is the text when it holds no placeholder: rendering it costs
	// nothing.
	Fixed   string
	IsFixed bool
}

// Render appends the rendered text over event to buf and returns the
// extended buffer and the text (a string, which allocates unless fixed).
// It fails, leaving buf as it was, where the template cannot render the
// event (a JSON template whose placeholder outside quotes finds no single
// JSON value): the caller fails that record, naming the field, since an
// empty or broken value must not be sent as if it were the rendered one.
func (f *Field) Render(buf, event []byte) ([]byte, string, error) {
	if f.IsFixed {
		return buf, f.Fixed, nil
	}
	start := len(buf)
	buf, err := f.T.Render(buf, event)
	if err != nil {
		return buf, "", err
	}
	return buf, string(buf[start:]), nil
}

// Field compiles text at key. strict rejects a placeholder that names no
// variable (the template syntax of docs/transforms.md leaves it in the
// output as written, which in a name such as a topic can only be a
// mistake).
func (c *Compiler) Field(key []string, text string, strict bool) *Field {
	t := c.Compile(key, text, strict)
	if t == nil {
		return nil
	}
	f := &Field{T: t}
	if !strings.Contains(text, "${") {
		f.Fixed, f.IsFixed = text, true
	}
	return f
}

// Compile compiles text at key; see Field.
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
		return t.WithLimit(template.OutputLimit(c.MaxEvent))
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
