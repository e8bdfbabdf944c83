// Package componenttest helps builtins' tests go the way the config loader
// goes: decode a component table written as TOML against the registered
// spec, and build an Env whose logs go to the test. Only test binaries
// import it.
package componenttest

import (
	"context"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
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

// Apply runs payloads through a one-to-one transform and returns the output
// payloads. It fails the test when an output is missing, failed, lost its
// input's metadata (Ref, Key) or has spare capacity (a consumer appending
// to it would overwrite other data).
func Apply(t testing.TB, tr component.Transform, payloads ...string) []string {
	t.Helper()
	in := make([]message.Message, len(payloads))
	for i, p := range payloads {
		in[i] = message.Message{Payload: []byte(p), Ref: int32(i), Key: []byte("k")}
	}
	var out component.Output
	if err := tr.Apply(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != len(in) || len(out.Failures) != 0 {
		t.Fatalf("%d outputs, %d failures for %d inputs", len(out.Messages), len(out.Failures), len(in))
	}
	got := make([]string, len(in))
	for i, m := range out.Messages {
		if m.Ref != int32(i) || string(m.Key) != "k" {
			t.Fatalf("output %d lost its metadata", i)
		}
		if cap(m.Payload) != len(m.Payload) {
			t.Fatalf("output %d has spare capacity: a consumer appending to it would overwrite other data", i)
		}
		got[i] = string(m.Payload)
	}
	return got
}

// OneProblem checks that probs holds exactly one problem, at path (key or
// value, byte offset inside a string or -1) with a message starting with
// msg.
func OneProblem(t testing.TB, probs []component.Problem, path string, atKey bool, offset int, msg string) {
	t.Helper()
	if len(probs) != 1 {
		t.Fatalf("problems: %+v", probs)
	}
	pr := probs[0]
	if pr.PathString() != path || pr.AtKey != atKey || pr.Offset != offset || !strings.HasPrefix(pr.Msg, msg) {
		t.Fatalf("problem %s (key %v, offset %d): %q\nwant %s (key %v, offset %d): %q", pr.PathString(), pr.AtKey, pr.Offset, pr.Msg, path, atKey, offset, msg)
	}
}

// Build decodes src as Decode does, fails the test on any problem, and
// builds the component with env (see Env), as the loader would.
func Build(t testing.TB, register func(*component.Registry), kind component.Kind, name, src string, env component.Env) any {
	t.Helper()
	cfg, p := Decode(t, register, kind, name, src)
	if p.Len() > 0 {
		t.Fatalf("%s %q config problems: %v", kind, name, p.List())
	}
	r := component.NewRegistry()
	register(r)
	spec, _ := r.Lookup(kind, name)
	if env.Problems == nil {
		env.Problems = component.NewProblems(string(kind))
	}
	v, err := spec.Build(cfg, env)
	if err != nil {
		t.Fatalf("build %s %q: %v", kind, name, err)
	}
	if env.Problems.Len() > 0 {
		t.Fatalf("build %s %q: %v", kind, name, env.Problems.List())
	}
	return v
}
