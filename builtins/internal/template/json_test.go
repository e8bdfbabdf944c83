package template

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONTemplateEscapesStrings: in a JSON template, a value placed inside
// a JSON string is escaped, so no value can close the string and add keys;
// the rendered text always parses, with the value intact.
func TestJSONTemplateEscapesStrings(t *testing.T) {
	attack := `{"order":"o-1\",\"role\":\"admin","note":"line\nbreak \\ \u0001","html":"<b>\"x\"</b>","obj":{"k":"v\""},"bad":"caf\u00e9"}`
	cases := []struct {
		name string
		text string
		vars map[string]string
		want map[string]any
	}{
		{"string value", `{"order": "${o}", "role": "user"}`, map[string]string{"o": "$.order"},
			map[string]any{"order": `o-1","role":"admin`, "role": "user"}},
		{"jsonEscape is the same inside a string", `{"order": "${jsonEscape(o)}", "role": "user"}`, map[string]string{"o": "$.order"},
			map[string]any{"order": `o-1","role":"admin`, "role": "user"}},
		{"control characters and backslashes", `{"n": "[${n}]"}`, map[string]string{"n": "$.note"},
			map[string]any{"n": "[line\nbreak \\ \u0001]"}},
		{"htmlEscape, then JSON", `{"h": "${htmlEscape(h)}"}`, map[string]string{"h": "$.html"},
			map[string]any{"h": `&lt;b&gt;&quot;x&quot;&lt;/b&gt;`}},
		{"object inside a string", `{"o": "${o}"}`, map[string]string{"o": "$.obj"},
			map[string]any{"o": `{"k":"v\""}`}},
		{"key position", `{"${o}": 1}`, map[string]string{"o": "$.order"},
			map[string]any{`o-1","role":"admin`: 1.0}},
		{"fixed value inside a string", `{"f": "${f}", "o": "${o}"}`, map[string]string{"f": `a "quoted" \ text`, "o": "$.order"},
			map[string]any{"f": `a "quoted" \ text`, "o": `o-1","role":"admin`}},
		{"array template", `["${o}", ${obj}]`, map[string]string{"o": "$.order", "obj": "$.obj"},
			nil},
		{"missing value inside a string is empty", `{"m": "${m}"}`, map[string]string{"m": "$.nope"},
			map[string]any{"m": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl := mustCompile(t, c.text, c.vars)
			if !tpl.JSON() {
				t.Fatalf("%q is not taken as a JSON template", c.text)
			}
			out, err := tpl.Render(nil, []byte(attack))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			var got any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("rendered %s: not JSON: %v", out, err)
			}
			if c.want == nil {
				return
			}
			if m, ok := got.(map[string]any); !ok || len(m) != len(c.want) {
				t.Fatalf("rendered %s, want the members %v", out, c.want)
			}
			for k, v := range c.want {
				if got.(map[string]any)[k] != v {
					t.Fatalf("rendered %s: %q = %v, want %v", out, k, got.(map[string]any)[k], v)
				}
			}
		})
	}
}

// TestJSONTemplateValuesMustBeJSON: a placeholder outside a string stands
// for one JSON value; a render that would not give one (a string whose
// characters are not JSON, a path that found nothing) fails instead of
// emitting broken or injected JSON.
func TestJSONTemplateValuesMustBeJSON(t *testing.T) {
	input := `{"n": 42, "s": "1, \"role\": \"admin\"", "num": "17", "o": {"a": [1, 2]}, "word": "admin"}`
	vars := map[string]string{"n": "$.n", "s": "$.s", "num": "$.num", "o": "$.o", "word": "$.word", "m": "$.missing"}
	good := []struct{ text, want string }{
		{`{"v": ${n}}`, `{"v": 42}`},
		{`{"v": ${o}}`, `{"v": {"a":[1,2]}}`},
		{`{"v": ${num}}`, `{"v": 17}`}, // a string holding one JSON value is that value, as before
		{`[${n}, ${o}]`, `[42, {"a":[1,2]}]`},
	}
	for _, c := range good {
		tpl := mustCompile(t, c.text, vars)
		out, err := tpl.Render(nil, []byte(input))
		if err != nil || string(out) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.text, out, err, c.want)
		}
	}
	bad := []struct{ text, why string }{
		{`{"v": ${s}, "role": "user"}`, "${s}"},
		{`{"v": ${word}}`, "${word}"},
		{`{"v": ${m}}`, "found nothing"},
		{`{"v": ${jsonEscape(o)}}`, "${jsonEscape(o)}"},
	}
	for _, c := range bad {
		tpl := mustCompile(t, c.text, vars)
		out, err := tpl.Render([]byte("keep"), []byte(input))
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: rendered %q, err %v; want an error naming %s", c.text, out, err, c.why)
		}
		if string(out) != "keep" {
			t.Errorf("%s: a failed render left %q", c.text, out)
		}
	}
}

// TestRenderNeedsJSONInput: a template with paths over an input that is
// not JSON (a text output of the previous stage, invalid JSON from a WASM
// module) fails instead of rendering empty values; a template without
// paths does not read its input.
func TestRenderNeedsJSONInput(t *testing.T) {
	for _, in := range []string{`user-42`, `{"a": 1`, ``, `{"a": 1} {"a": 2}`} {
		tpl := mustCompile(t, `[${a}]`, map[string]string{"a": "$.a"})
		out, err := tpl.Render(nil, []byte(in))
		if err == nil || !strings.Contains(err.Error(), "not JSON") || len(out) != 0 {
			t.Errorf("input %q: %q, %v; want an error saying it is not JSON", in, out, err)
		}
	}
	tpl := mustCompile(t, `fixed ${f}`, map[string]string{"f": "x"})
	if out, err := tpl.Render(nil, []byte("not json")); err != nil || string(out) != "fixed x" {
		t.Errorf("template without paths: %q, %v", out, err)
	}
}

// TestTextTemplatesUnchanged: a template that is not a JSON object or array
// renders values as their characters, as before.
func TestTextTemplatesUnchanged(t *testing.T) {
	input := `{"s": "say \"hi\"", "n": 7}`
	for _, c := range []struct{ text, want string }{
		{`user ${s} #${n}`, `user say "hi" #7`},
		{`"${s}"`, `"say "hi""`},
		{`[${s}] [${n}]`, `[say "hi"] [7]`},
		{`${s}`, `say "hi"`},
	} {
		tpl := mustCompile(t, c.text, map[string]string{"s": "$.s", "n": "$.n"})
		if tpl.JSON() {
			t.Errorf("%q taken as a JSON template", c.text)
		}
		out, err := tpl.Render(nil, []byte(input))
		if err != nil || string(out) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.text, out, err, c.want)
		}
	}
}

// TestRenderFailureLeavesDst: where Render fails (the sinks' names and
// headers over the source event, the transform over its input), it returns
// dst as it was, so that nothing of a failed render is sent, and an error
// the caller must handle: there is no form that drops it.
func TestRenderFailureLeavesDst(t *testing.T) {
	tpl := mustCompile(t, `orders-${r}`, map[string]string{"r": "$.region"})
	if got, err := tpl.Render([]byte("t:"), []byte(`{"region": "eu"}`)); err != nil || string(got) != "t:orders-eu" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := tpl.Render([]byte("t:"), []byte(`not json`)); err == nil || string(got) != "t:" {
		t.Fatalf("got %q, %v; want nothing appended and an error", got, err)
	}
}

// TestFixedValueOutsideStringIsLexed: the lexer that decides whether a
// placeholder sits inside a JSON string read the literal text only, never
// the fixed values. A fixed value written outside a string that holds an
// odd number of quotes flipped the real string state, so a path placeholder
// taken to be inside a string was outside one: its value was only
// string-escaped, and an event could break the document or add elements to
// a template classified as JSON. The lexer now reads the fixed values as
// they are written: such a template is JSON only where it always renders
// JSON with the members its author wrote.
func TestFixedValueOutsideStringIsLexed(t *testing.T) {
	for _, c := range []struct {
		text string
		vars map[string]string
		in   string
		json bool   // a JSON template
		want string // the render; "" when it fails
	}{
		// ${x} follows a number outside any string: no value can stand
		// there, so these are text templates, rendered as text.
		{`{${f}":1${x}}`, map[string]string{"f": `"p`, "x": "$.x"}, `{"x":"}"}`, false, `{"p":1}}`},
		{`[${f}",1${x}]`, map[string]string{"f": `"p`, "x": "$.x"}, `{"x":"]"}`, false, `["p",1]]`},
		{`[${f}",1${x}]`, map[string]string{"f": `"p`, "x": "$.x"}, `{"x":",2,[3]"}`, false, `["p",1,2,[3]]`},
		// The fixed value opens a string the literal text closes: ${x}
		// stands for a value.
		{`{${f}x": ${x}}`, map[string]string{"f": `"p`, "x": "$.x"}, `{"x":{"a":1}}`, true, `{"px": {"a":1}}`},
		{`{${f}x": ${x}}`, map[string]string{"f": `"p`, "x": "$.x"}, `{"x":"1}, \"y\": {"}`, true, ""},
		// The fixed value opens a string ${x} sits in: its value is
		// escaped for it.
		{`[${f}${x}"]`, map[string]string{"f": `"`, "x": "$.x"}, `{"x":"\"],[1"}`, true, `["\"],[1"]`},
		// A fixed value that is one JSON string keeps the state.
		{`[${f}, ${x}]`, map[string]string{"f": `"a\"],[\""`, "x": "$.x"}, `{"x":[2]}`, true, `["a\"],[\"", [2]]`},
		// A fixed value that leaves an escape open before a placeholder
		// cannot be part of a JSON template.
		{`[${f}${x}"]`, map[string]string{"f": `"\`, "x": "$.x"}, `{"x":"n"}`, false, `["\n"]`},
	} {
		tpl := mustCompile(t, c.text, c.vars)
		if tpl.JSON() != c.json {
			t.Errorf("%s with f=%q: JSON template %v, want %v", c.text, c.vars["f"], tpl.JSON(), c.json)
			continue
		}
		out, err := tpl.Render(nil, []byte(c.in))
		if got := string(out); err != nil && c.want != "" || err == nil && got != c.want {
			t.Errorf("%s with f=%q over %s: %q, %v; want %q", c.text, c.vars["f"], c.in, out, err, c.want)
		}
		if tpl.JSON() && err == nil && !json.Valid(out) {
			t.Errorf("JSON template %s with f=%q over %s rendered invalid JSON %s", c.text, c.vars["f"], c.in, out)
		}
	}
}
