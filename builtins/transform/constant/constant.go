// Package constant is the `constant` transform (docs/transforms.md): every
// input becomes the same fixed text.
package constant

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// MaxLen is the longest value, in Unicode code points.
const MaxLen = 1024

// Config is the constant transform's configuration.
type Config struct {
	// Value is a pointer so that a missing key and an empty one are told
	// apart in messages.
	Value *string `toml:"value" doc:"The output text, emitted verbatim for every input (${...} is not expanded); 1..1,024 characters. Required."`
}

// Validate checks the value is present, not empty and not too long.
func (c *Config) Validate(p *component.Problems) {
	switch {
	case reported(p, "value"):
		// Decoding already said the value has the wrong type.
	case c.Value == nil:
		p.KeyErrorf(nil, "invalid transform: VALUE_REQUIRED: the constant transform needs a value, e.g. value = \"hello\"")
	case *c.Value == "":
		p.Addf([]string{"value"}, "invalid transform: VALUE_REQUIRED: value is empty; give 1..%d characters", MaxLen)
	default:
		if n := utf8.RuneCountInString(*c.Value); n > MaxLen {
			p.AddAt([]string{"value"}, template.RuneOffset(*c.Value, MaxLen),
				"invalid transform: TOO_LONG: value is %d characters long; at most %d are allowed (this is character %d)", n, MaxLen, MaxLen+1)
		}
	}
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

// Register adds the constant transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "constant",
		Summary: "Replace every input with a fixed text.",
		Description: "Outputs `value` verbatim for every input; the input is ignored and `${...}` inside the value is " +
			"**not** expanded. `value` must be 1..1,024 characters (Unicode code points).",
		Example: "[[transform]]\ntype = \"constant\"\nvalue = '{\"event\": \"ping\"}'\n",
		New:     func() any { return &Config{} },
		Build: func(cfg any, env component.Env) (any, error) {
			c := cfg.(*Config)
			p := component.NewProblems()
			c.Validate(p)
			if p.Len() > 0 {
				return nil, errors.New(p.List()[0].Msg)
			}
			return &Transform{value: []byte(*c.Value)}, nil
		},
	})
}

// Transform emits the same bytes for every input.
type Transform struct {
	value []byte
}

// Apply emits the constant for every input. All outputs share one slice,
// capped so that no consumer can append into it.
func (t *Transform) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	v := t.value[:len(t.value):len(t.value)]
	for i := range in {
		out.Emit(&in[i], v)
	}
	return nil
}
