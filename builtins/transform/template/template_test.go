package template

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// kafkaEvent is the Kafka-sourced sample of docs/transforms.md.
const kafkaEvent = `{
  "specversion": "1.0",
  "id": "8e215af8-0000-4249-8645-f96c1026aaaa",
  "source": "acs:alikafka",
  "type": "alikafka:Topic:Message",
  "subject": "acs:alikafka_pre-cn-xxxx:topic:clicks",
  "datacontenttype": "application/json; charset=utf-8",
  "time": "2022-06-23T02:49:51.589Z",
  "aliyunaccountid": "1000000000000000",
  "data": {
    "topic": "clicks",
    "partition": 7,
    "offset": 25,
    "timestamp": 1655952591589,
    "headers": { "headers": [], "isReadOnly": false },
    "key": "user-42",
    "value": "{\"page\":\"/home\",\"ms\":31}"
  }
}`

func load(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		t.Fatalf("toml: %v\n%s", err, src)
	}
	cfg := &Config{}
	p := component.NewProblems("transform", "[0]")
	component.Decode(doc["transform"].([]map[string]any)[0], cfg, p, "type")
	return cfg, p.List()
}

func mustBuild(t testing.TB, src string, env component.Env) *Transform {
	t.Helper()
	cfg, probs := load(t, src)
	if len(probs) != 0 {
		t.Fatalf("problems: %+v", probs)
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindTransform, "template")
	inst, err := spec.Build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return inst.(*Transform)
}

func run(t testing.TB, tr component.Transform, payloads ...string) []string {
	t.Helper()
	return componenttest.Apply(t, tr, payloads...)
}

func tomlTemplate(text string, vars string) string {
	return "[[transform]]\ntype = \"template\"\ntemplate = '''" + text + "'''\nvariables = " + vars + "\n"
}

func TestTemplate(t *testing.T) {
	cases := []struct {
		name, text, vars, input, want string
	}{
		{"spec text", `user ${k} on partition ${p}`, `{ k = "$.data.key", p = "$.data.partition" }`, kafkaEvent, `user user-42 on partition 7`},
		{"spec json", `{"who": "${k}", "hdr": ${h}, "v": 1}`, `{ k = "$.data.key", h = "$.data.headers" }`, kafkaEvent,
			`{"who": "user-42", "hdr": {"headers":[],"isReadOnly":false}, "v": 1}`},
		{"spec config", `{"user": "${u}", "ms": ${ms}}`, `{ u = "$.data.key", ms = "$.data.timestamp" }`, kafkaEvent, `{"user": "user-42", "ms": 1655952591589}`},
		{"string holding JSON, escaped", `{"v": "${jsonEscape(v)}"}`, `{ v = "$.data.value" }`, kafkaEvent, `{"v": "{\"page\":\"/home\",\"ms\":31}"}`},
		{"htmlEscape", `<p>${htmlEscape(v)}</p>`, `{ v = "$.data.value" }`, kafkaEvent, `<p>{&quot;page&quot;:&quot;/home&quot;,&quot;ms&quot;:31}</p>`},
		{"missing path", `<${m}>`, `{ m = "$.data.nope" }`, kafkaEvent, `<>`},
		{"null and booleans", `${a} ${b}`, `{ a = "$.z", b = "$.t" }`, `{"z": null, "t": true}`, `null true`},
		{"undefined placeholder", `${k} ${x}`, `{ k = "$.data.key" }`, kafkaEvent, `user-42 ${x}`},
		{"fixed value", `${env}:${k}`, `{ env = "prod", k = "$.data.key" }`, kafkaEvent, `prod:user-42`},
		{"empty variables", `no placeholders`, `{}`, kafkaEvent, `no placeholders`},
		{"whole input", `${e}`, `{ e = "$" }`, `{ "a": 1 }`, `{"a":1}`},
		{"unicode", `→${k}←`, `{ k = "$.ü" }`, `{"ü": "ö\u00df"}`, `→öß←`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := mustBuild(t, tomlTemplate(c.text, c.vars), component.Env{})
			if got := run(t, tr, c.input)[0]; got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestVariablesTableForm(t *testing.T) {
	src := "[[transform]]\ntype = \"template\"\ntemplate = 'user ${u}'\n[transform.variables]\nu = \"$.data.key\"\n"
	if got := run(t, mustBuild(t, src, component.Env{}), kafkaEvent)[0]; got != "user user-42" {
		t.Fatalf("got %q", got)
	}
}

func TestChain(t *testing.T) {
	// The output of the first template is JSON; the second reads it.
	first := mustBuild(t, tomlTemplate(`{"user": "${jsonEscape(k)}", "p": ${p}}`, `{ k = "$.data.key", p = "$.data.partition" }`), component.Env{})
	second := mustBuild(t, tomlTemplate(`${u}@${p}`, `{ u = "$.user", p = "$.p" }`), component.Env{})
	if got := run(t, second, run(t, first, kafkaEvent)...)[0]; got != "user-42@7" {
		t.Fatalf("chain = %q", got)
	}
	// A text output read as JSON fails the record: TestNotRenderable.
}

// TestNotRenderable: an input the template cannot render fails the record
// (event-permanent, so it goes to the dead-letter queue) instead of
// emitting an empty or broken output that would count as delivered.
func TestNotRenderable(t *testing.T) {
	cases := []struct{ name, text, vars, input, why string }{
		{"text input", `[${k}|${f}]`, `{ k = "$.data.key", f = "fixed" }`, `user user-42`, "not JSON"},
		{"invalid JSON (a WASM module's output)", `{"u": "${u}"}`, `{ u = "$.user" }`, `{"user": "x"`, "not JSON"},
		{"missing value in a JSON template", `{"u": ${u}}`, `{ u = "$.user" }`, `{}`, "found nothing"},
		{"a string that would break a JSON template", `{"u": ${u}, "role": "user"}`, `{ u = "$.user" }`, `{"user": "1, \"role\": \"admin\""}`, "not one JSON value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := mustBuild(t, tomlTemplate(c.text, c.vars), component.Env{})
			var out component.Output
			in := []message.Message{{Payload: []byte(c.input), Ref: 0}}
			if err := tr.Apply(context.Background(), in, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) != 0 || len(out.Failures) != 1 {
				t.Fatalf("%d outputs (%q), %d failures; want the record failed", len(out.Messages), out.Buf, len(out.Failures))
			}
			if err := out.Failures[0].Err; component.ClassOf(err) != component.ClassEventPermanent || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("failure %v, want event-permanent naming %q", err, c.why)
			}
			if len(out.Buf) != 0 {
				t.Fatalf("a failed render left %q in the buffer", out.Buf)
			}
		})
	}
}

// TestOutputIsBounded: a template's output had no bound, so a template
// repeating a value rendered gigabytes for one large event. A render over 4
// × max_event_size + 64 KiB (the task's limit reaches the transform as
// Env.MaxEvent) fails the record, event-permanent, with the size reached
// and the limit; a render within it is emitted.
func TestOutputIsBounded(t *testing.T) {
	tr := mustBuild(t, tomlTemplate(strings.Repeat("${a}", 5), `{ a = "$.a" }`), component.Env{MaxEvent: 1024}) // limit 69,632
	for _, c := range []struct {
		n    int
		fail bool
	}{{13000, false}, {15000, true}} {
		var out component.Output
		in := []message.Message{{Payload: []byte(`{"a":"` + strings.Repeat("x", c.n) + `"}`), Ref: 0}}
		if err := tr.Apply(context.Background(), in, &out); err != nil {
			t.Fatal(err)
		}
		if !c.fail {
			if len(out.Messages) != 1 || len(out.Messages[0].Payload) != 5*c.n {
				t.Fatalf("a value of %d bytes: %d outputs, %d failures; want its 5 copies", c.n, len(out.Messages), len(out.Failures))
			}
			continue
		}
		if len(out.Messages) != 0 || len(out.Failures) != 1 || len(out.Buf) != 0 {
			t.Fatalf("a value of %d bytes: %d outputs, %d failures, %d bytes left in the buffer; want the record failed", c.n, len(out.Messages), len(out.Failures), len(out.Buf))
		}
		err := out.Failures[0].Err
		if want := "the output reached 75000 bytes after ${a}, over the limit of 69632 bytes"; component.ClassOf(err) != component.ClassEventPermanent || !strings.Contains(err.Error(), want) {
			t.Fatalf("failure %v (%s); want event-permanent saying %q", err, component.ClassOf(err), want)
		}
	}
}

type wantProblem struct {
	path   string
	atKey  bool
	offset int
	msg    string // prefix
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("é", 10241)
	cases := []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"missing template", "[[transform]]\ntype = \"template\"\nvariables = { a = \"$.a\" }\n",
			[]wantProblem{{"transform[0]", true, -1, "invalid transform: TEMPLATE_REQUIRED: the template transform needs a template"}}},
		{"empty template", "[[transform]]\ntype = \"template\"\ntemplate = \"\"\nvariables = { a = \"$.a\" }\n",
			[]wantProblem{{"transform[0].template", false, -1, "invalid transform: TEMPLATE_REQUIRED: template is empty"}}},
		{"missing variables", "[[transform]]\ntype = \"template\"\ntemplate = \"x\"\n",
			[]wantProblem{{"transform[0]", true, -1, "invalid transform: TEMPLATE_REQUIRED: the template transform needs variables"}}},
		{"missing both", "[[transform]]\ntype = \"template\"\n",
			[]wantProblem{{"transform[0]", true, -1, "invalid transform: TEMPLATE_REQUIRED: the template transform needs a template"},
				{"transform[0]", true, -1, "invalid transform: TEMPLATE_REQUIRED: the template transform needs variables"}}},
		{"template not a string", "[[transform]]\ntype = \"template\"\ntemplate = 3\nvariables = {}\n",
			[]wantProblem{{"transform[0].template", false, -1, "expected a string, got integer 3"}}},
		{"variables a string", "[[transform]]\ntype = \"template\"\ntemplate = \"x\"\nvariables = \"$.a\"\n",
			[]wantProblem{{"transform[0].variables", false, -1, `invalid transform: VARIABLES_INVALID: variables must be a table of strings (name = "$.path" or fixed text), got string "$.a"`}}},
		{"variables an array", "[[transform]]\ntype = \"template\"\ntemplate = \"x\"\nvariables = [\"$.a\"]\n",
			[]wantProblem{{"transform[0].variables", false, -1, "invalid transform: VARIABLES_INVALID: variables must be a table of strings (name = \"$.path\" or fixed text), got an array"}}},
		{"variable values of other types", "[[transform]]\ntype = \"template\"\ntemplate = \"${a}\"\n[transform.variables]\na = 1\nb = true\nc = [\"$.x\"]\nd = { e = \"$.x\" }\nf = 1.5\nok = \"$.ok\"\n",
			[]wantProblem{
				{"transform[0].variables.a", false, -1, `invalid transform: VARIABLES_INVALID: variable "a" must be a string (a JSONPath starting with $, or a fixed text), got integer 1`},
				{"transform[0].variables.b", false, -1, `invalid transform: VARIABLES_INVALID: variable "b" must be a string (a JSONPath starting with $, or a fixed text), got boolean true`},
				{"transform[0].variables.c", false, -1, `invalid transform: VARIABLES_INVALID: variable "c" must be a string (a JSONPath starting with $, or a fixed text), got an array`},
				{"transform[0].variables.d", false, -1, `invalid transform: VARIABLES_INVALID: variable "d" must be a string (a JSONPath starting with $, or a fixed text), got a table`},
				{"transform[0].variables.f", false, -1, `invalid transform: VARIABLES_INVALID: variable "f" must be a string (a JSONPath starting with $, or a fixed text), got float 1.5`},
			}},
		{"invalid paths", "[[transform]]\ntype = \"template\"\ntemplate = \"${a}${b}\"\nvariables = { a = \"$.items[*].id\", b = \"$..x\", c = \"data.key\" }\n",
			[]wantProblem{
				{"transform[0].variables.a", false, 8, `invalid transform: JSONPATH_INVALID: path "$.items[*].id": wildcard ([*]) is not supported`},
				{"transform[0].variables.b", false, 1, `invalid transform: JSONPATH_INVALID: path "$..x": recursive descent (..) is not supported`},
			}},
		{"template too long", "[[transform]]\ntype = \"template\"\ntemplate = \"" + long + "\"\nvariables = {}\n",
			[]wantProblem{{"transform[0].template", false, 20480, "invalid transform: TOO_LONG: the template is 10241 characters long; at most 10240 are allowed"}}},
		{"variable too long", "[[transform]]\ntype = \"template\"\ntemplate = \"${v}\"\nvariables = { v = \"" + long + "\" }\n",
			[]wantProblem{{"transform[0].variables.v", false, 20480, "invalid transform: TOO_LONG: the value is 10241 characters long; at most 10240 are allowed"}}},
		{"every problem at once", "[[transform]]\ntype = \"template\"\ntemplate = \"\"\nvariables = { a = 1, b = \"$[-1]\", c = \"" + long + "\" }\n",
			[]wantProblem{
				{"transform[0].template", false, -1, "invalid transform: TEMPLATE_REQUIRED"},
				{"transform[0].variables.a", false, -1, "invalid transform: VARIABLES_INVALID"},
				{"transform[0].variables.b", false, 2, "invalid transform: JSONPATH_INVALID"},
				{"transform[0].variables.c", false, 20480, "invalid transform: TOO_LONG"},
			}},
		{"unknown key", "[[transform]]\ntype = \"template\"\ntemplate = \"x\"\nvariables = {}\nvariable = {}\n",
			[]wantProblem{{"transform[0].variable", true, -1, `unknown key "variable" (did you mean "variables"?)`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := load(t, c.src)
			if len(probs) != len(c.want) {
				t.Fatalf("got %d problems, want %d: %+v", len(probs), len(c.want), probs)
			}
			for i, w := range c.want {
				pr := probs[i]
				if pr.PathString() != w.path || pr.AtKey != w.atKey || pr.Offset != w.offset || !strings.HasPrefix(pr.Msg, w.msg) {
					t.Errorf("problem %d: %s (key %v, offset %d): %q\nwant %s (key %v, offset %d): %q", i, pr.PathString(), pr.AtKey, pr.Offset, pr.Msg, w.path, w.atKey, w.offset, w.msg)
				}
			}
		})
	}
}

func TestLimitsExact(t *testing.T) {
	ok := strings.Repeat("😀", 10240)
	tr := mustBuild(t, "[[transform]]\ntype = \"template\"\ntemplate = \""+ok+"\"\nvariables = { v = \""+ok+"\" }\n", component.Env{})
	if got := run(t, tr, "{}")[0]; got != ok {
		t.Fatal("10,240-character template not rendered")
	}
	tr = mustBuild(t, tomlTemplate("${v}", `{ v = "`+ok+`" }`), component.Env{})
	if got := run(t, tr, "{}")[0]; got != ok {
		t.Fatal("10,240-character fixed value not rendered")
	}
}

func TestSpec(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindTransform, "template")
	if !ok || spec.Summary == "" || spec.Description == "" {
		t.Fatal("spec incomplete")
	}
	tr := mustBuild(t, spec.Example, component.Env{})
	if got := run(t, tr, kafkaEvent)[0]; got != `{"user": "user-42", "ms": 1655952591589}` {
		t.Fatalf("example gives %q", got)
	}
	if _, err := spec.Build(&Config{}, component.Env{}); err == nil {
		t.Fatal("Build accepted an empty config")
	}
}

func TestLongValueWarns(t *testing.T) {
	var logs bytes.Buffer
	tr := mustBuild(t, tomlTemplate(`${v}`, `{ v = "$.v" }`), component.Env{Logger: zerolog.New(&logs)})
	long := strings.Repeat("x", 10241)
	in, _ := json.Marshal(map[string]string{"v": long})
	got := run(t, tr, string(in), string(in))
	if got[0] != long {
		t.Fatal("value truncated")
	}
	if n := strings.Count(logs.String(), "longer than 10240 characters"); n != 1 {
		t.Fatalf("%d warnings (want 1, sampled): %s", n, logs.String())
	}
}

func TestApplyDoesNotAllocate(t *testing.T) {
	tr := mustBuild(t, tomlTemplate(`{"user": "${jsonEscape(u)}", "ms": ${ms}, "h": ${h}}`, `{ u = "$.data.key", ms = "$.data.timestamp", h = "$.data.headers" }`), component.Env{})
	in := make([]message.Message, 8)
	for i := range in {
		in[i].Payload = []byte(kafkaEvent)
	}
	out := component.Output{Messages: make([]message.Message, 0, 8), Buf: make([]byte, 0, 4096)}
	if n := testing.AllocsPerRun(100, func() {
		out.Reset()
		_ = tr.Apply(context.Background(), in, &out)
	}); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}

// TestConcurrentApply: workers share one Transform (run with -race).
func TestConcurrentApply(t *testing.T) {
	tr := mustBuild(t, tomlTemplate(`${k}/${p}`, `{ k = "$.data.key", p = "$.data.partition" }`), component.Env{})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			in := []message.Message{{Payload: []byte(fmt.Sprintf(`{"data": {"key": "w%d", "partition": %d}}`, w, w))}}
			want := fmt.Sprintf("w%d/%d", w, w)
			var out component.Output
			for range 300 {
				out.Reset()
				if err := tr.Apply(context.Background(), in, &out); err != nil || string(out.Messages[0].Payload) != want {
					t.Errorf("worker %d got %q, %v", w, out.Messages[0].Payload, err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
