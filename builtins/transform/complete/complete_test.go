package complete

import (
	"context"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func build(t *testing.T, src string) (component.Transform, []component.Problem) {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		t.Fatal(err)
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindTransform, "complete")
	cfg := spec.New()
	p := component.NewProblems("transform", "[0]")
	component.Decode(doc["transform"].([]map[string]any)[0], cfg, p, "type")
	if p.Len() > 0 {
		return nil, p.List()
	}
	inst, err := spec.Build(cfg, component.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return inst.(component.Transform), nil
}

func TestComplete(t *testing.T) {
	tr, probs := build(t, "[[transform]]\ntype = \"complete\"\n")
	if probs != nil {
		t.Fatal(probs)
	}
	inputs := []string{
		// Field order, number text and spacing are kept byte for byte.
		"{\"specversion\": \"1.0\", \"id\": \"x\", \"data\": {\"z\": 1.50, \"a\": 1e3, \"big\": 12345678901234567890}}",
		"{\n  \"b\": [1,\n 2],\n  \"a\": \"caf\\u00e9\"\n}\n",
		"not json at all", // later in a chain, the previous output may be text
		"",
	}
	in := make([]message.Message, len(inputs))
	for i, s := range inputs {
		in[i] = message.Message{Payload: []byte(s), Event: []byte("event"), Key: []byte("k"), Ref: int32(i),
			Headers: []message.Header{{Key: "h", Value: []byte("v")}}, Pos: message.Position{Stream: "s", Offset: int64(i)}}
	}
	var out component.Output
	if err := tr.Apply(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != len(in) || len(out.Failures) != 0 {
		t.Fatalf("%d outputs, %d failures", len(out.Messages), len(out.Failures))
	}
	for i, m := range out.Messages {
		if string(m.Payload) != inputs[i] {
			t.Errorf("output %d = %q, want %q", i, m.Payload, inputs[i])
		}
		if m.Ref != int32(i) || string(m.Key) != "k" || string(m.Event) != "event" || len(m.Headers) != 1 || m.Pos.Offset != int64(i) {
			t.Errorf("output %d lost metadata: %+v", i, m)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	_, probs := build(t, "[[transform]]\ntype = \"complete\"\npath = \"$.a\"\n")
	if len(probs) != 1 || probs[0].PathString() != "transform[0].path" || !strings.Contains(probs[0].Msg, `unknown key "path"`) {
		t.Fatalf("problems %+v", probs)
	}
}

func TestSpec(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindTransform, "complete")
	if !ok || spec.Summary == "" || spec.Description == "" {
		t.Fatal("spec incomplete")
	}
	if _, probs := build(t, spec.Example); probs != nil {
		t.Fatalf("example does not load: %+v", probs)
	}
}

func TestApplyDoesNotAllocate(t *testing.T) {
	in := make([]message.Message, 16)
	out := component.Output{Messages: make([]message.Message, 0, 16)}
	if n := testing.AllocsPerRun(100, func() {
		out.Reset()
		_ = Transform{}.Apply(context.Background(), in, &out)
	}); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}
