// Package template is the `template` transform (docs/transforms.md): it
// renders a text or JSON template whose `${name}` placeholders take values from
// the input through JSONPath variables. The engine itself lives in
// builtins/internal/template, shared with sinks.
package template

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rs/zerolog"

	tpl "github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the template transform's configuration.
type Config struct {
	// Template is a pointer so that a missing key and an empty one are told
	// apart in messages.
	Template *string `toml:"template" doc:"Text with ${name}, ${jsonEscape(name)} and ${htmlEscape(name)} placeholders; 1..10,240 characters. Required."`
	// Variables is typed loosely so that a value of the wrong type is
	// reported with the spec's VARIABLES_INVALID code, not a generic one.
	Variables any `toml:"variables" doc:"Table of name = string: a string starting with $ is a JSONPath into the input, any other string a fixed text; each at most 10,240 characters. Required (may be empty)."`
}

// Validate reports every problem of the template and its variables.
func (c *Config) Validate(p *component.Problems) {
	c.compile(p)
}

// compile checks c, reporting to p, and returns the compiled template when
// there is no problem.
func (c *Config) compile(p *component.Problems) *tpl.Template {
	before := p.Len()
	text := ""
	switch {
	case reported(p, "template"):
		// Decoding already said the template has the wrong type.
	case c.Template == nil:
		p.KeyErrorf(nil, "invalid transform: TEMPLATE_REQUIRED: the template transform needs a template, e.g. template = 'user ${u}'")
	case *c.Template == "":
		p.Addf([]string{"template"}, "invalid transform: TEMPLATE_REQUIRED: template is empty; give 1..%d characters", tpl.MaxTemplateLen)
	default:
		text = *c.Template
	}
	// Problems about single variables are collected first so they come out
	// in name order, whichever check found them.
	vars := map[string]string{}
	byVar := map[string][]component.Problem{}
	switch v := c.Variables.(type) {
	case nil:
		p.KeyErrorf(nil, "invalid transform: TEMPLATE_REQUIRED: the template transform needs variables, e.g. variables = { u = \"$.data.key\" }")
	case map[string]any:
		for name, val := range v {
			s, ok := val.(string)
			if !ok {
				byVar[name] = append(byVar[name], component.Problem{Path: []string{"variables", name}, Offset: -1,
					Msg: fmt.Sprintf("invalid transform: VARIABLES_INVALID: variable %q must be a string (a JSONPath starting with $, or a fixed text), got %s", name, component.Describe(val))})
				continue
			}
			vars[name] = s
		}
	default:
		p.Addf([]string{"variables"}, "invalid transform: VARIABLES_INVALID: variables must be a table of strings (name = \"$.path\" or fixed text), got %s", component.Describe(v))
	}
	t, err := tpl.Compile(text, vars)
	var errs tpl.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			msg := fmt.Sprintf("invalid transform: %s: %s", e.Code, e.Msg)
			if e.Var == "" {
				p.AddAt([]string{"template"}, e.Offset, "%s", msg)
				continue
			}
			byVar[e.Var] = append(byVar[e.Var], component.Problem{Path: []string{"variables", e.Var}, Offset: e.Offset, Msg: msg})
		}
	}
	names := make([]string, 0, len(byVar))
	for name := range byVar {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, pr := range byVar[name] {
			p.Add(pr)
		}
	}
	if p.Len() > before {
		return nil
	}
	return t
}

// reported reports whether p already holds a problem about key.
func reported(p *component.Problems, key string) bool {
	want := component.FormatPath(append(append([]string(nil), p.Base()...), key))
	for _, pr := range p.List() {
		if pr.PathString() == want {
			return true
		}
	}
	return false
}

// Register adds the template transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "template",
		Summary: "Render a text or JSON template with values taken from the input by JSONPath.",
		Description: "Renders `template`, replacing each `${name}` with the variable `name`: a variable whose value starts " +
			"with `$` is a JSONPath into the input (a string is inserted as its raw characters, a number as its JSON " +
			"text, true/false/null as such, an object or array as compact JSON; a path that matches nothing inserts " +
			"nothing), any other value is fixed text. `${jsonEscape(name)}` escapes the value for the inside of a JSON " +
			"string, `${htmlEscape(name)}` replaces `& < > \"` with entities. Placeholders naming no variable stay as " +
			"written; inserted values are never scanned for placeholders. A JSON template (a JSON object or array " +
			"around the placeholders) always renders JSON: a value inside quotes is escaped for the string, and a " +
			"placeholder outside quotes must render one JSON value. An input the template cannot render (not JSON " +
			"although a variable reads it, a value that would break a JSON template, or an output over 4 x " +
			"max_event_size + 64 KiB) goes to the dead-letter queue.",
		Example: "[[transform]]\ntype = \"template\"\ntemplate = '''{\"user\": \"${jsonEscape(u)}\", \"ms\": ${ms}}'''\n" +
			"[transform.variables]\nu = \"$.data.key\"\nms = \"$.data.timestamp\"\n",
		New:   func() any { return &Config{} },
		Build: build,
	})
}

func build(cfg any, env component.Env) (any, error) {
	c := cfg.(*Config)
	p := component.NewProblems()
	t := c.compile(p)
	if t == nil {
		return nil, errors.New(p.List()[0].Msg)
	}
	// A render is bounded by the task's event limit (docs/transforms.md,
	// "Limits"): a template repeating a large value fails its record.
	t = t.WithLimit(tpl.OutputLimit(env.MaxEvent))
	return &Transform{tpl: t, log: env.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})}, nil
}

// Transform renders the template for every input.
type Transform struct {
	tpl *tpl.Template
	log zerolog.Logger
}

// Apply renders each input into out.Buf and emits the rendered region. An
// input the template cannot render (not JSON although the template reads
// it, a value that would break a JSON template, an output over the limit)
// fails, to the dead-letter queue: an empty, broken or unbounded render
// must not pass for a result.
func (t *Transform) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	for i := range in {
		start := len(out.Buf)
		var oversize bool
		var err error
		out.Buf, oversize, err = t.tpl.RenderReport(out.Buf, in[i].Payload)
		if err != nil {
			out.Fail(&in[i], component.EventPermanent(err))
			continue
		}
		end := len(out.Buf)
		if oversize {
			t.log.Warn().Str(logx.Position, in[i].Pos.String()).
				Msgf("template: a value taken from the input is longer than %d characters; inserted untruncated", tpl.MaxValueLen)
		}
		out.Emit(&in[i], out.Buf[start:end:end])
	}
	return nil
}
