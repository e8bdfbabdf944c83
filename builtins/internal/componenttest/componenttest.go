// Package componenttest helps builtins' tests go the way the config loader
// goes: decode a component table written as TOML against the registered
// spec, and build an Env whose logs go to the test. Only test binaries
// import it.
package componenttest

import (
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Decode decodes src (the keys of one [source], [sink] or [[transform]]
// table) into a fresh config of the kind/name component that register adds,
// as the loader does ("type" is the loader's and is skipped). Problems are
// rooted at path and returned, not fatal.
func Decode(t testing.TB, register func(*component.Registry), kind component.Kind, name, src string, path ...string) (any, *component.Problems) {
	t.Helper()
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		t.Fatalf("toml: %v", err)
	}
	r := component.NewRegistry()
	register(r)
	spec, ok := r.Lookup(kind, name)
	if !ok {
		t.Fatalf("no %s %q registered", kind, name)
	}
	if len(path) == 0 {
		path = []string{string(kind)}
	}
	cfg := spec.New()
	p := component.NewProblems(path...)
	component.Decode(tree, cfg, p, "type")
	return cfg, p
}

// Env returns an Env for tests: task "t1", a 1 MiB event limit, logs at
// level to t, fresh metrics, problems rooted at path.
func Env(t testing.TB, level zerolog.Level, path ...string) component.Env {
	return component.Env{
		Task:     "t1",
		MaxEvent: 1 << 20,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)).Level(level),
		Metrics:  metrics.New(),
		Problems: component.NewProblems(path...),
	}
}
