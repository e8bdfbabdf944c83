package constant

import (
	"context"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// load decodes the first [[transform]] table of src as the loader does.
func load(t *testing.T, src string) (*Config, []component.Problem) {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		t.Fatalf("toml: %v", err)
	}
	cfg := &Config{}
	p := component.NewProblems("transform", "[0]")
	component.Decode(doc["transform"].([]map[string]any)[0], cfg, p, "type")
	return cfg, p.List()
}

func apply(t *testing.T, cfg *Config, payloads ...string) []string {
	t.Helper()
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindTransform, "constant")
	inst, err := spec.Build(cfg, component.Env{Task: "t"})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]message.Message, len(payloads))
	for i, p := range payloads {
		in[i] = message.Message{Payload: []byte(p), Ref: int32(i), Key: []byte("k")}
	}
	var out component.Output
	if err := inst.(component.Transform).Apply(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != len(in) || len(out.Failures) != 0 {
		t.Fatalf("%d outputs, %d failures for %d inputs", len(out.Messages), len(out.Failures), len(in))
	}
	got := make([]string, len(out.Messages))
	for i, m := range out.Messages {
		if m.Ref != int32(i) || string(m.Key) != "k" {
			t.Fatalf("output %d lost its metadata: %+v", i, m)
		}
		if cap(m.Payload) != len(m.Payload) {
			t.Fatalf("output %d payload has spare capacity %d", i, cap(m.Payload)-len(m.Payload))
		}
		got[i] = string(m.Payload)
	}
	return got
}

func TestConstant(t *testing.T) {
	event := `{"specversion":"1.0","data":{"key":"user-42"}}`
	cases := []struct {
		name  string
		src   string
		want  string
		input []string
	}{
		{"text", "[[transform]]\ntype = \"constant\"\nvalue = \"hello\"\n", "hello", []string{event, event}},
		{"placeholders not expanded", "[[transform]]\ntype = \"constant\"\nvalue = 'user ${k} ${jsonEscape(k)} $${x}'\n", "user ${k} ${jsonEscape(k)} $${x}", []string{event}},
		{"json text", "[[transform]]\ntype = \"constant\"\nvalue = '''{\"event\": \"ping\", \"n\": 1.50}'''\n", `{"event": "ping", "n": 1.50}`, []string{event}},
		{"unicode and newlines", "[[transform]]\ntype = \"constant\"\nvalue = \"héllo\\n😀\\t\"\n", "héllo\n😀\t", []string{event}},
		{"input not JSON is ignored", "[[transform]]\ntype = \"constant\"\nvalue = \"x\"\n", "x", []string{"not json", "", "{"}},
		{"one character", "[[transform]]\ntype = \"constant\"\nvalue = \" \"\n", " ", []string{event}},
		{"exactly 1,024 characters", "[[transform]]\ntype = \"constant\"\nvalue = \"" + strings.Repeat("😀", 1024) + "\"\n", strings.Repeat("😀", 1024), []string{event}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, probs := load(t, c.src)
			if len(probs) != 0 {
				t.Fatalf("problems: %+v", probs)
			}
			for i, got := range apply(t, cfg, c.input...) {
				if got != c.want {
					t.Fatalf("output %d = %q, want %q", i, got, c.want)
				}
			}
		})
	}
}

func TestConstantErrors(t *testing.T) {
	cases := []struct {
		name   string
		src    string
		path   string
		atKey  bool
		offset int
		msg    string
	}{
		{"missing value", "[[transform]]\ntype = \"constant\"\n", "transform[0]", true, -1, "invalid transform: VALUE_REQUIRED: the constant transform needs a value"},
		{"empty value", "[[transform]]\ntype = \"constant\"\nvalue = \"\"\n", "transform[0].value", false, -1, "invalid transform: VALUE_REQUIRED: value is empty"},
		{"1,025 characters", "[[transform]]\ntype = \"constant\"\nvalue = \"" + strings.Repeat("é", 1025) + "\"\n", "transform[0].value", false, 2048,
			"invalid transform: TOO_LONG: value is 1025 characters long; at most 1024 are allowed"},
		{"not a string", "[[transform]]\ntype = \"constant\"\nvalue = 3\n", "transform[0].value", false, -1, "expected a string, got integer 3"},
		{"unknown key", "[[transform]]\ntype = \"constant\"\nvalue = \"x\"\nvalu = \"y\"\n", "transform[0].valu", true, -1, `unknown key "valu" (did you mean "value"?)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := load(t, c.src)
			componenttest.OneProblem(t, probs, c.path, c.atKey, c.offset, c.msg)
		})
	}
}

func TestSpec(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindTransform, "constant")
	if !ok || spec.Summary == "" || spec.Description == "" {
		t.Fatal("spec incomplete")
	}
	cfg, probs := load(t, spec.Example)
	if len(probs) != 0 {
		t.Fatalf("example does not load: %+v", probs)
	}
	if got := apply(t, cfg, "{}"); got[0] != `{"event": "ping"}` {
		t.Fatalf("example renders %q", got[0])
	}
	if _, err := spec.Build(&Config{}, component.Env{}); err == nil {
		t.Fatal("Build accepted a config without value")
	}
}

func BenchmarkApply(b *testing.B) {
	tr := &Transform{value: []byte("ping")}
	in := make([]message.Message, 100)
	out := component.Output{Messages: make([]message.Message, 0, 100)}
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		_ = tr.Apply(context.Background(), in, &out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
}
