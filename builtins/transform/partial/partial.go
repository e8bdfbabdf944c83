// Package partial is the `partial` transform (docs/transforms.md): the
// output is the one value a JSONPath names in the input.
package partial

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Config is the partial transform's configuration.
type Config struct {
	// Path is a pointer so that a missing key and an empty one are told
	// apart in messages.
	Path *string `toml:"path" doc:"JSONPath of the value to output, e.g. \"$.data.key\": $ then .name, ['name'] or [n] steps (definite paths only). Required."`
}

// Validate checks the path is present and parses.
func (c *Config) Validate(p *component.Problems) {
	switch {
	case reported(p, "path"):
		// Decoding already said the path has the wrong type.
	case c.Path == nil:
		p.KeyErrorf(nil, "invalid transform: VALUE_REQUIRED: the partial transform needs a path, e.g. path = \"$.data.key\"")
	case *c.Path == "":
		p.Addf([]string{"path"}, "invalid transform: VALUE_REQUIRED: path is empty; give a JSONPath such as \"$.data.key\"")
	default:
		if _, err := jsonpath.Parse(*c.Path); err != nil {
			var pe *jsonpath.Error
			errors.As(err, &pe)
			p.AddAt([]string{"path"}, pe.Offset, "invalid transform: JSONPATH_INVALID: %s", pe.Error())
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

// Register adds the partial transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "partial",
		Summary: "Output the one value a JSONPath names in the input.",
		Description: "Outputs the value at `path` in the input (the event, or the previous step's output parsed as JSON). " +
			"A string is output as its raw characters (no quotes, escapes decoded); a number, boolean, `null`, object " +
			"or array as compact JSON text, keeping the input's key order and number text. A path that matches nothing " +
			"gives an empty payload and counts in the `sluice_transform_empty` metric; an input that is not JSON (text " +
			"from the previous step, invalid JSON) goes to the dead-letter queue.",
		Example: "[[transform]]\ntype = \"partial\"\npath = \"$.data.value\"\n",
		New:     func() any { return &Config{} },
		Build:   build,
	})
}

// EmptyMetric names the counter of inputs a partial path matched nothing in
// (docs/transforms.md, "Decisions").
const EmptyMetric = "transform_empty"

func build(cfg any, env component.Env) (any, error) {
	c := cfg.(*Config)
	if c.Path == nil {
		return nil, errors.New("invalid transform: VALUE_REQUIRED: the partial transform needs a path")
	}
	segs, err := jsonpath.Parse(*c.Path)
	if err != nil {
		return nil, err
	}
	t := &Transform{set: jsonpath.NewSet()}
	t.set.Add(segs)
	t.empty = env.Metrics.Counter(EmptyMetric, "Events a partial transform's path matched nothing in; each was passed on with an empty payload.", "task").WithLabelValues(env.Task)
	t.log = env.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	t.path = *c.Path
	return t, nil
}

// Transform extracts one value per input.
type Transform struct {
	set   *jsonpath.Set
	path  string
	empty metrics.Counter
	log   zerolog.Logger
}

// Apply emits, for each input, the value at the path. Values that need no
// rewriting (a string without escapes, a number, compact JSON) are emitted
// as a slice of the input; others are rendered into out.Buf.
func (t *Transform) Apply(_ context.Context, in []message.Message, out *component.Output) error {
	var spans [1]jsonpath.Span
	for i := range in {
		m := &in[i]
		if !t.set.Resolve(m.Payload, spans[:]) {
			// The previous stage emitted text or invalid JSON: an empty
			// payload would pass for a result.
			out.Fail(m, component.EventPermanent(fmt.Errorf("partial: the input is not JSON (%d bytes), so %s has nothing to read: the previous stage emitted text or invalid JSON", len(m.Payload), t.path)))
			continue
		}
		if !spans[0].Found() {
			t.empty.Inc()
			n := len(out.Buf)
			out.Emit(m, out.Buf[n:n:n])
			continue
		}
		tok := m.Payload[spans[0].Start:spans[0].End]
		var v []byte
		switch tok[0] {
		case '"':
			if c, ok := jsonscan.StringContent(tok); ok {
				v = c[:len(c):len(c)]
			}
		case '{', '[':
			if jsonscan.IsCompact(tok) {
				v = tok[:len(tok):len(tok)]
			}
		default:
			v = tok[:len(tok):len(tok)]
		}
		if v == nil {
			start := len(out.Buf)
			out.Buf = template.AppendValue(out.Buf, tok)
			end := len(out.Buf)
			v = out.Buf[start:end:end]
		}
		if len(v) > template.MaxValueLen {
			if n := utf8.RuneCount(v); n > template.MaxValueLen {
				t.log.Warn().Str(logx.Position, m.Pos.String()).Int("characters", n).Str("path", t.path).
					Msgf("partial: extracted value is longer than %d characters; passed on untruncated", template.MaxValueLen)
			}
		}
		out.Emit(m, v)
	}
	return nil
}
