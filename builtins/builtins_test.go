package builtins

import (
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// TestEverySpecIsDocumentedAndItsExampleDecodes: every builtin has a summary
// and an example, its example decodes without a problem, and every field it
// documents is a key the decoder reads (the docs cannot drift from decoding).
func TestEverySpecIsDocumentedAndItsExampleDecodes(t *testing.T) {
	r := component.NewRegistry()
	RegisterAll(r)
	specs := r.Specs()
	if len(specs) < 12 {
		t.Fatalf("only %d components registered", len(specs))
	}
	for _, s := range specs {
		t.Run(string(s.Kind)+"/"+s.Name, func(t *testing.T) {
			if s.Summary == "" || s.Example == "" {
				t.Fatalf("%s %q lacks a summary or an example", s.Kind, s.Name)
			}
			var doc map[string]any
			if _, err := toml.Decode(s.Example, &doc); err != nil {
				t.Fatalf("example is not TOML: %v\n%s", err, s.Example)
			}
			var table map[string]any
			switch s.Kind {
			case component.KindTransform:
				list, _ := doc["transform"].([]map[string]any)
				if len(list) != 1 {
					t.Fatalf("a transform example holds one [[transform]] table:\n%s", s.Example)
				}
				table = list[0]
			default:
				table, _ = doc[string(s.Kind)].(map[string]any)
			}
			if table == nil || table["type"] != s.Name {
				t.Fatalf("the example's table does not have type = %q:\n%s", s.Name, s.Example)
			}
			p := component.NewProblems(string(s.Kind))
			// Engine keys the loader takes out before the component sees them.
			for _, k := range []string{"concurrency", "order", "batch", "buffer"} {
				if fields, _ := component.FieldsOf(s.New()); !hasField(fields, k) {
					delete(table, k)
				}
			}
			component.Decode(table, s.New(), p, "type")
			for _, pr := range p.List() {
				t.Errorf("example problem: %s: %s", pr.PathString(), pr.Msg)
			}
			fields, err := component.FieldsOf(s.New())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fields {
				if f.Doc == "" {
					t.Errorf("key %q has no doc", f.Name)
				}
			}
			// Every toml-tagged field is listed (FieldsOf and Decode read the
			// same tags).
			n := 0
			rt := reflect.TypeOf(s.New()).Elem()
			for i := range rt.NumField() {
				if tag := rt.Field(i).Tag.Get("toml"); tag != "" && tag != "-" && !strings.HasPrefix(tag, ",") {
					n++
				}
			}
			if n != len(fields) {
				t.Errorf("%d tagged fields, %d documented", n, len(fields))
			}
		})
	}
}

func hasField(fs []component.Field, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// TestFamilies: each connector family compiled in registers components of
// its own, and the families in and out of this build (Omitted) make up
// AllFamilies.
func TestFamilies(t *testing.T) {
	all := component.NewRegistry()
	RegisterAll(all)
	core := component.NewRegistry()
	saved := families
	families = nil
	RegisterAll(core)
	families = saved
	if len(core.Specs()) >= len(all.Specs()) && len(families) > 0 {
		t.Fatalf("the families add nothing: %d components with them, %d without", len(all.Specs()), len(core.Specs()))
	}
	for _, f := range families {
		r := component.NewRegistry()
		f.register(r)
		if len(r.Specs()) == 0 {
			t.Errorf("family %s registers no component", f.name)
		}
	}
	if got := len(families) + len(Omitted()); got != len(AllFamilies) {
		t.Fatalf("%d families compiled in and %v left out, want the %d of %v", len(families), Omitted(), len(AllFamilies), AllFamilies)
	}
}

// TestDefaultConditionBudgetsAgree: the loader caps a playground fragment's
// condition_budget at config.DefaultConditionBudget, which must be the
// filter's own default.
func TestDefaultConditionBudgetsAgree(t *testing.T) {
	if condition.DefaultSteps != config.DefaultConditionBudget {
		t.Fatalf("condition.DefaultSteps = %d, config.DefaultConditionBudget = %d", condition.DefaultSteps, config.DefaultConditionBudget)
	}
}
