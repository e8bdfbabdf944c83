package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

type testSourceConfig struct {
	Path    string             `toml:"path" required:"true" doc:"file"`
	Timeout component.Duration `toml:"timeout"`
	Format  string             `toml:"format" enum:"auto,json,cloudevents"`
	Tags    []string           `toml:"tags"`
	Nested  struct {
		Depth int `toml:"depth" min:"1" max:"9"`
	} `toml:"nested"`
}

type testSinkConfig struct {
	URL   string `toml:"url"`
	Batch struct {
		MaxEvents int                `toml:"max_events"`
		MaxWait   component.Duration `toml:"max_wait"`
	} `toml:"batch"`
}

type testTransformConfig struct {
	Variables map[string]any `toml:"variables"`
	Template  string         `toml:"template"`
}

func (c *testTransformConfig) Validate(p *component.Problems) {
	if strings.Contains(c.Template, "BAD") {
		p.AddAt([]string{"template"}, strings.Index(c.Template, "BAD"), "invalid transform: TEMPLATE_BAD: the word BAD")
	}
}

type nopComp struct{}

func (nopComp) Open(context.Context) error                                        { return nil }
func (nopComp) Close(context.Context) error                                       { return nil }
func (nopComp) Read(context.Context) (component.Batch, error)                     { return component.Batch{}, nil }
func (nopComp) Write(context.Context, []message.Message) error                    { return nil }
func (nopComp) Apply(context.Context, []message.Message, *component.Output) error { return nil }

func testRegistry() *component.Registry {
	r := component.NewRegistry()
	r.Register(component.Spec{Kind: component.KindSource, Name: "thing", New: func() any { return &testSourceConfig{Format: "auto"} },
		Build: func(any, component.Env) (any, error) { return nopComp{}, nil }})
	r.Register(component.Spec{Kind: component.KindSink, Name: "out", New: func() any { return &testSinkConfig{} },
		Build: func(any, component.Env) (any, error) { return nopComp{}, nil }})
	r.Register(component.Spec{Kind: component.KindSink, Name: "plain", New: func() any {
		return &struct {
			Path string `toml:"path"`
		}{}
	},
		Build: func(any, component.Env) (any, error) { return nopComp{}, nil }})
	r.Register(component.Spec{Kind: component.KindTransform, Name: "template", New: func() any { return &testTransformConfig{} },
		Build: func(any, component.Env) (any, error) { return nopComp{}, nil }})
	return r
}

func load(t *testing.T, text string) (*Task, Diagnostics) {
	t.Helper()
	l := &Loader{Registry: testRegistry(), LookupEnv: func(k string) (string, bool) {
		if k == "HOME_DIR" {
			return "/home/x", true
		}
		return "", false
	}}
	task, err := l.Load("task.toml", []byte(text))
	if err != nil {
		var ds Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("want Diagnostics, got %T %v", err, err)
		}
		return nil, ds
	}
	return task, nil
}

func TestLoadValid(t *testing.T) {
	task, ds := load(t, `
name = "eu-orders"
max_in_flight = 8

[source]
type = "thing"
path = "${env:HOME_DIR}/in.log"
timeout = "2s"
concurrency = 4
order = "key"
tags = ["a", "b"]
nested = { depth = 3 }

[[transform]]
type = "template"
template = '{"a": "${x}", "lit": "$${y}"}'
variables = { x = "$.data.x" }

[[transform]]
type = "template"
template = "${env:MISSING:-fallback}"

[sink]
type = "out"
url = "http://x"
batch = { max_events = 50, max_wait = "250ms" }

[retry]
policy = "exponential"

[errors]
tolerance = "none"

[dead_letter]
type = "plain"
path = "dlq.jsonl"
`)
	if ds != nil {
		t.Fatalf("unexpected diagnostics:\n%v", ds)
	}
	src := task.Source.Config.(*testSourceConfig)
	if src.Path != "/home/x/in.log" || src.Timeout.D().String() != "2s" || src.Nested.Depth != 3 || len(src.Tags) != 2 {
		t.Fatalf("source config %+v", src)
	}
	if task.Engine.Concurrency != 4 || task.Engine.Order != "key" || task.Engine.MaxInFlight != 8 {
		t.Fatalf("engine %+v", task.Engine)
	}
	if task.Engine.MaxEvents != 50 || task.Engine.MaxWait.String() != "250ms" {
		t.Fatalf("sink batch %+v", task.Engine)
	}
	if got := task.Transforms[0].Config.(*testTransformConfig).Template; got != `{"a": "${x}", "lit": "${y}"}` {
		t.Fatalf("template %q", got)
	}
	if got := task.Transforms[1].Config.(*testTransformConfig).Template; got != "fallback" {
		t.Fatalf("env default %q", got)
	}
	if task.Retry.Attempts != 176 || task.Tolerance != "none" || task.DeadLetter == nil {
		t.Fatalf("retry %+v tolerance %q dlq %v", task.Retry, task.Tolerance, task.DeadLetter)
	}
	if task.Sink.Config.(*testSinkConfig).Batch.MaxEvents != 50 {
		t.Fatal("a sink that declares batch must receive it")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	text := `name = "bad name!"
bogus = 1

[source]
type = "thing"
paht = "x"
timeout = "2 secs"
format = "jsn"
concurrency = 40
nested = { depth = 0, extra = true }

[[transform]]
type = "template"
template = "ok"

[[transform]]
type = "tempalte"

[[transform]]
type = "template"
template = "x BAD y"
varibles = {}

[sink]
type = "out"
url = 7
batch = { max_events = 0, max_wiat = "1s" }

[retry]
policy = "backoff"
attempts = 3

[errors]
tolerance = "some"
`
	_, ds := load(t, text)
	want := []string{
		`task.toml:1:8: name: invalid task name "bad name!": use letters, digits and '-', starting with a letter or digit`,
		`task.toml:2:1: bogus: unknown key "bogus"`,
		`task.toml:4:2: source: missing required key "path"`,
		`task.toml:6:1: source.paht: unknown key "paht" (did you mean "path"?)`,
		`task.toml:7:11: source.timeout: invalid duration "2 secs" (want e.g. "500ms", "2s", "1m")`,
		`task.toml:8:10: source.format: invalid value "jsn": must be one of "auto", "json", "cloudevents" (did you mean "json"?)`,
		`task.toml:9:15: source.concurrency: value 40 is above the maximum 32 (allowed: 1..32)`,
		`task.toml:10:20: source.nested.depth: value 0 is below the minimum 1 (allowed: 1..9)`,
		`task.toml:10:23: source.nested.extra: unknown key "extra"`,
		`task.toml:17:8: transform[1].type: invalid transform: TRANSFORM_KIND: unknown transform type "tempalte" (did you mean "template"?) (known: template)`,
		`task.toml:21:15: transform[2].template: invalid transform: TEMPLATE_BAD: the word BAD`,
		`task.toml:22:1: transform[2].varibles: unknown key "varibles" (did you mean "variables"?)`,
		`task.toml:26:7: sink.url: expected a string, got integer 7`,
		`task.toml:27:24: sink.batch.max_events: value 0 is below the minimum 1 (allowed: 1..1000000)`,
		`task.toml:27:27: sink.batch.max_wiat: unknown key "max_wiat" (did you mean "max_wait"?)`,
		`task.toml:31:1: retry.attempts: attempts applies only to policy = "custom" (policy is "backoff")`,
		`task.toml:34:13: errors.tolerance: invalid value "some": must be one of "all", "none"`,
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diagnostics:\n%s\n\nwant:\n%s\n\nfull:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), ds)
	}
	// Snippets carry the line and a caret under the culprit.
	for _, d := range ds {
		if d.Path == "source.timeout" {
			want := "    7 | timeout = \"2 secs\"\n      |           ^^^^^^^^"
			if d.Snippet != want {
				t.Fatalf("snippet:\n%s\nwant:\n%s", d.Snippet, want)
			}
		}
	}
}

func TestLoadSyntaxError(t *testing.T) {
	_, ds := load(t, "name = \"x\"\n[source\ntype = 1\n")
	if len(ds) != 1 || ds[0].Line != 2 || !strings.Contains(ds[0].Msg, "invalid TOML") || ds[0].Snippet == "" {
		t.Fatalf("got %#v", ds)
	}
}

func TestLoadEnv(t *testing.T) {
	_, ds := load(t, "name = \"x\"\n[source]\ntype = \"thing\"\npath = \"a ${env:NOPE} b\"\n[sink]\ntype = \"out\"\n")
	if len(ds) != 1 || ds[0].Error() != `task.toml:4:11: source.path: environment variable NOPE is not set (set it, or give a default: ${env:NOPE:-value})` {
		t.Fatalf("got %v", ds)
	}
}

func TestLoadNameLimit(t *testing.T) {
	long := strings.Repeat("a", 128)
	_, ds := load(t, "name = \""+long+"\"\n[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n")
	if len(ds) != 1 || !strings.Contains(ds[0].Msg, "128 characters long; the limit is 127") {
		t.Fatalf("got %v", ds)
	}
	if _, ds := load(t, "name = \""+long[:127]+"\"\n[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n"); ds != nil {
		t.Fatalf("127 characters must pass: %v", ds)
	}
}

func TestLoadAllQuotaAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	body := "[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n"
	for i, n := range []string{"a", "b", "a"} {
		os.WriteFile(filepath.Join(dir, string(rune('1'+i))+".toml"), []byte("name = \""+n+"\"\n"+body), 0o644)
	}
	l := &Loader{Registry: testRegistry(), Quota: 2}
	_, err := l.LoadAll([]string{dir})
	if err == nil || !strings.Contains(err.Error(), `task name "a" is already used`) || !strings.Contains(err.Error(), "exceed the task quota of 2") {
		t.Fatalf("got %v", err)
	}
}

// Each component's Env names its place in the task, so that a component
// that keeps files (a wasm transform's saved state) can tell two
// [[transform]]s of the same type apart.
func TestLoadEnvStage(t *testing.T) {
	r := testRegistry()
	var stages []string
	record := func(_ any, env component.Env) (any, error) {
		stages = append(stages, env.Stage)
		return nopComp{}, nil
	}
	r.Register(component.Spec{Kind: component.KindSource, Name: "src", New: func() any { return &struct{}{} }, Build: record})
	r.Register(component.Spec{Kind: component.KindTransform, Name: "tr", New: func() any { return &struct{}{} }, Build: record})
	r.Register(component.Spec{Kind: component.KindSink, Name: "snk", New: func() any { return &struct{}{} }, Build: record})
	l := &Loader{Registry: r}
	_, err := l.Load("task.toml", []byte("name = \"x\"\n[source]\ntype = \"src\"\n[[transform]]\ntype = \"tr\"\n[[transform]]\ntype = \"tr\"\n"+
		"[sink]\ntype = \"snk\"\n[dead_letter]\ntype = \"snk\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(stages, " "); got != "source transform[0] transform[1] sink dead_letter" {
		t.Fatalf("stages %q", got)
	}
}

// A negative quota (LoadAll's callers may pass one from the command line or
// the environment) means the default; it used to index files[-1] and panic.
func TestLoadAllNegativeQuotaMeansDefault(t *testing.T) {
	dir := t.TempDir()
	body := "[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n"
	for _, n := range []string{"a", "b"} {
		os.WriteFile(filepath.Join(dir, n+".toml"), []byte("name = \""+n+"\"\n"+body), 0o644)
	}
	for _, q := range []int{-1, -100} {
		l := &Loader{Registry: testRegistry(), Quota: q}
		tasks, err := l.LoadAll([]string{dir})
		if err != nil || len(tasks) != 2 {
			t.Fatalf("quota %d: %d tasks, %v", q, len(tasks), err)
		}
		l.closeAll(tasks)
	}
}

// A problem at an offset inside a basic string is located past escapes by
// what each decodes to: \u0041 is one byte, \u00e9 two, \u20ac three,
// \U0001F600 four, \n one; a line-ending backslash none.
func TestOffsetAfterUnicodeEscapes(t *testing.T) {
	for _, line := range []string{
		`template = "\u0041\u0042 BAD"`,
		`template = "\u00e9 BAD"`,
		`template = "\u20ac BAD"`,
		`template = "\U0001F600\U00000041 BAD"`,
		`template = "\n\t\"\\ \u00E9\u0041 BAD"`,
	} {
		_, ds := load(t, "name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[[transform]]\ntype = \"template\"\n"+line+"\n[sink]\ntype = \"out\"\n")
		if len(ds) != 1 {
			t.Fatalf("%s: want one diagnostic, got %v", line, ds)
		}
		if want := strings.Index(line, "BAD") + 1; ds[0].Line != 7 || ds[0].Col != want {
			t.Errorf("%s: diagnostic at %d:%d, want 7:%d (the BAD):\n%v", line, ds[0].Line, ds[0].Col, want, ds)
		}
	}
	// A line-ending backslash decodes to nothing.
	_, ds := load(t, "name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[[transform]]\ntype = \"template\"\ntemplate = \"\"\"\nab \\\n    \\u0041 BAD\"\"\"\n[sink]\ntype = \"out\"\n")
	if len(ds) != 1 || ds[0].Line != 9 || ds[0].Col != 12 {
		t.Fatalf("want one diagnostic at 9:12 (the BAD), got %v", ds)
	}
}

// A problem at an offset inside a string is reported by the component at
// an offset in the string after ${env:...} expansion; the column is the
// one in the file, which still holds the reference. An offset inside an
// expanded value points at its reference.
func TestOffsetAfterEnvExpansion(t *testing.T) {
	for _, c := range []struct{ line, at string }{
		{`template = "${env:HOME_DIR} BAD"`, "BAD"},                        // "/home/x" is longer than nothing, shorter than the reference
		{`template = "${env:UNSET:-} $${x} ${env:UNSET:-abc} BAD"`, "BAD"}, // an empty default, an escaped ${, a default
		{`template = "\u0041${env:HOME_DIR}BAD"`, "BAD"},                   // with an escape before the reference
		{`template = "x${env:BADVAR:-BAD}"`, "${env:BADVAR"},               // inside an expanded value: the reference
	} {
		_, ds := load(t, "name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[[transform]]\ntype = \"template\"\n"+c.line+"\n[sink]\ntype = \"out\"\n")
		if len(ds) != 1 {
			t.Fatalf("%s: want one diagnostic, got %v", c.line, ds)
		}
		if want := strings.Index(c.line, c.at) + 1; ds[0].Line != 7 || ds[0].Col != want {
			t.Errorf("%s: diagnostic at %d:%d, want 7:%d (%s):\n%v", c.line, ds[0].Line, ds[0].Col, want, c.at, ds)
		}
	}
	// A problem of the expansion itself stays at the reference.
	line := `template = "ab ${env:NOPE}"`
	_, ds := load(t, "name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[[transform]]\ntype = \"template\"\n"+line+"\n[sink]\ntype = \"out\"\n")
	if len(ds) != 1 || ds[0].Line != 7 || ds[0].Col != strings.Index(line, "${")+1 {
		t.Fatalf("want one diagnostic at the reference, got %v", ds)
	}
}
