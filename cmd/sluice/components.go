package main

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/runtime/component"
)

// buildComponent builds the typ component of kind from a table written as a
// task file would hold it, through the registry: the command gets what a
// task would get, checks included.
func buildComponent(kind component.Kind, typ string, table map[string]any, env component.Env) (any, error) {
	spec, ok := registry().Lookup(kind, typ)
	if !ok {
		return nil, fmt.Errorf("no %s %q in this build", kind, typ)
	}
	cfg := spec.New()
	p := component.NewProblems(string(kind))
	component.Decode(table, cfg, p)
	if err := problemsErr(p); err != nil {
		return nil, err
	}
	env.Problems = p
	inst, err := spec.Build(cfg, env)
	if err == nil {
		err = problemsErr(p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, typ, err)
	}
	return inst, nil
}

func problemsErr(p *component.Problems) error {
	if p.Len() == 0 {
		return nil
	}
	var msgs []string
	for _, pr := range p.List() {
		msgs = append(msgs, pr.PathString()+": "+pr.Msg)
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
