package config

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

func expandIn(t *testing.T, env map[string]string, tree map[string]any) (map[string]any, []string) {
	t.Helper()
	p := component.NewProblems()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	expandTree(tree, lookup, p, nil, expansions{})
	var msgs []string
	for _, pr := range p.List() {
		msgs = append(msgs, component.FormatPath(pr.Path)+": "+pr.Msg)
	}
	return tree, msgs
}

// An environment value inside a JSON string of pattern_json is data: a
// quote, backslash or newline in it is escaped and cannot add members to
// the pattern.
func TestEnvValueInPatternJSONStringIsEscaped(t *testing.T) {
	for _, v := range []string{`eu"], "admin": ["yes`, `a\`, "two\nlines", `plain`} {
		tree, msgs := expandIn(t, map[string]string{"REGION": v}, map[string]any{
			"filter": map[string]any{"pattern_json": `{"data": {"region": ["${env:REGION}"]}}`},
		})
		if len(msgs) != 0 {
			t.Fatalf("%q: problems %v", v, msgs)
		}
		got := tree["filter"].(map[string]any)["pattern_json"].(string)
		var pat struct {
			Data map[string][]string `json:"data"`
		}
		if err := json.Unmarshal([]byte(got), &pat); err != nil {
			t.Fatalf("%q: pattern_json became %s: %v", v, got, err)
		}
		if len(pat.Data) != 1 || len(pat.Data["region"]) != 1 || pat.Data["region"][0] != v {
			t.Fatalf("%q: pattern_json became %s", v, got)
		}
	}
}

// Outside a JSON string, a value must be one JSON value, or it is refused
// with the key named.
func TestEnvValueOutsidePatternJSONStringMustBeOneValue(t *testing.T) {
	pat := `{"data": {"amount": [{"numeric": [">", ${env:MIN}]}]}}`
	tree, msgs := expandIn(t, map[string]string{"MIN": "10"}, map[string]any{"filter": map[string]any{"pattern_json": pat}})
	if len(msgs) != 0 || !json.Valid([]byte(tree["filter"].(map[string]any)["pattern_json"].(string))) {
		t.Fatalf("a number: %v %v", msgs, tree)
	}
	_, msgs = expandIn(t, map[string]string{"MIN": `10]}], "admin": [{"exists": true`}, map[string]any{"filter": map[string]any{"pattern_json": pat}})
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "filter.pattern_json: the value of ${env:MIN} lands outside a JSON string") {
		t.Fatalf("got %v", msgs)
	}
}

// In a JSON template an environment value inside a string is escaped for
// it, as a fixed variable's is; a text template takes it as it is.
func TestEnvValueInJSONTemplateStringIsEscaped(t *testing.T) {
	env := map[string]string{"SITE": `x","role":"admin`}
	tree, msgs := expandIn(t, env, map[string]any{"transform": []map[string]any{
		{"type": "template", "template": `{"site":"${env:SITE}","v":${v}}`},
		{"type": "template", "template": `site "${env:SITE}"`},
	}})
	if len(msgs) != 0 {
		t.Fatalf("problems %v", msgs)
	}
	tr := tree["transform"].([]map[string]any)
	if got, want := tr[0]["template"], `{"site":"x\",\"role\":\"admin","v":${v}}`; got != want {
		t.Fatalf("JSON template: got %s, want %s", got, want)
	}
	if got, want := tr[1]["template"], `site "x","role":"admin"`; got != want {
		t.Fatalf("text template: got %s, want %s", got, want)
	}
}

// A default ends at the first }; one holding another reference is refused
// rather than read up to the inner reference's }.
func TestEnvDefaultWithNestedReferenceIsRefused(t *testing.T) {
	tree, msgs := expandIn(t, map[string]string{"B": "b"}, map[string]any{"source": map[string]any{"path": "p/${env:A:-${env:B}}/q"}})
	if len(msgs) != 1 || !strings.Contains(msgs[0], "source.path: the default of ${env:A} holds another reference") {
		t.Fatalf("got %v (%v)", msgs, tree)
	}
	tree, msgs = expandIn(t, nil, map[string]any{"source": map[string]any{"path": "${env:X:-a}b}"}})
	if len(msgs) != 0 || tree["source"].(map[string]any)["path"] != "ab}" {
		t.Fatalf("got %v %v", msgs, tree)
	}
}
