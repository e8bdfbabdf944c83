// Package runner hands loaded task files to the engine. The engine runs an
// engine.Definition and knows nothing of task files; the loader
// (runtime/config) reads task files and knows nothing of the engine. This
// package is the one place that maps the loader's types to the engine's.
package runner

import (
	"fmt"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/engine"
)

// New prepares the engine task of a loaded task file.
func New(t *config.Task, opts engine.Options) *engine.Task {
	return engine.New(Definition(t), opts)
}

// Definition maps a loaded task file to what the engine runs. The task's
// components must have been built (config.Loader does).
func Definition(t *config.Task) engine.Definition {
	d := engine.Definition{
		Name:        t.Name,
		Description: t.Description,
		Source:      instance[component.Source](&t.Source, "source"),
		SourceType:  t.Source.Type,
		Sink:        instance[component.Sink](&t.Sink, "sink"),
		SinkType:    t.Sink.Type,
		Engine: engine.Settings{
			Concurrency: t.Engine.Concurrency,
			Order:       engine.Order(t.Engine.Order),
			MaxInFlight: t.Engine.MaxInFlight,
			MaxEvents:   t.Engine.MaxEvents,
			MaxBytes:    t.Engine.MaxBytes,
			MaxWait:     t.Engine.MaxWait,
			MaxEvent:    t.Engine.MaxEvent,
			Buffer:      t.Engine.Buffer,

			DeadLetterMaxEvents: t.Engine.DeadLetterMaxEvents,
			DeadLetterMaxBytes:  t.Engine.DeadLetterMaxBytes,
		},
		Retry:       Policy(t.Retry),
		Tolerance:   engine.Tolerance(t.Tolerance),
		ExactlyOnce: t.ExactlyOnce,
	}
	if t.Filter != nil {
		d.Filter = t.Filter
	}
	for i := range t.Transforms {
		d.Transforms = append(d.Transforms, instance[component.Transform](&t.Transforms[i], "transform"))
		d.TransformTypes = append(d.TransformTypes, t.Transforms[i].Type)
	}
	if t.DeadLetter != nil {
		d.DeadLetter = instance[component.Sink](t.DeadLetter, "sink")
	}
	return d
}

func instance[T any](c *config.Component, kind string) T {
	v, ok := c.Instance.(T)
	if !ok {
		panic(fmt.Sprintf("runner: %s (%s) was not built as a %s", component.FormatPath(c.Path), c.Type, kind))
	}
	return v
}

// Policy turns a task's [retry] table into a delivery policy.
func Policy(r config.Retry) delivery.Policy {
	switch r.Policy {
	case "none":
		return delivery.None
	case "backoff", "":
		return delivery.Backoff
	case "exponential":
		return delivery.Exponential
	}
	return delivery.Policy{Attempts: r.Attempts, Initial: r.Initial, Max: r.Max, Multiplier: r.Multiplier, Jitter: r.Jitter, MaxAge: r.MaxAge}
}
