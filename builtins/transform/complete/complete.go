// Package complete is the `complete` transform (docs/transforms.md): it
// hands its input on unchanged, so the sink receives the whole event (or, later
// in a chain, the previous step's output) with its field order, number text and
// spacing as they were.
package complete

import (
	"context"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config has no keys.
type Config struct{}

// Register adds the complete transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "complete",
		Summary: "Pass the whole input on unchanged (the complete event).",
		Description: "Outputs its input as it is: for the first transform of a chain the complete CloudEvent JSON, " +
			"with field order and number text preserved; later in a chain, the previous step's output. " +
			"It has no options. A task without any transform behaves the same way.",
		Example: "[[transform]]\ntype = \"complete\"\n",
		New:     func() any { return &Config{} },
		Build: func(cfg any, env component.Env) (any, error) {
			return Transform{}, nil
		},
	})
}

// Transform passes payloads through. The outputs share the inputs' bytes:
// stages never modify a payload in place, so no copy is needed.
type Transform struct{}

// Apply emits every input unchanged.
func (Transform) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	for i := range in {
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}
