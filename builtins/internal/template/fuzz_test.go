package template

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// refPlaceholder is an independent statement of the placeholder syntax: "${",
// then characters that are not '}' and hold no "${", then "}".
var refPlaceholder = regexp.MustCompile(`\$\{((?:[^}$]|\$[^{}])*\$?)\}`)

// refRender renders text over input with encoding/json, jsonscan.Get and a
// regular expression instead of the engine's one-pass resolver.
func refRender(text string, vars map[string]string, input []byte) string {
	valid := json.Valid(input)
	value := func(v string) (string, bool) {
		if !strings.HasPrefix(v, "$") {
			return v, true
		}
		segs, err := jsonpath.Parse(v)
		if err != nil || !valid {
			return "", false
		}
		s, e, ok := jsonscan.Get(input, segs)
		if !ok {
			return "", false
		}
		tok := input[s:e]
		switch tok[0] {
		case '"':
			var str string
			_ = json.Unmarshal(tok, &str)
			return str, true
		case '{', '[':
			var b bytes.Buffer
			_ = json.Compact(&b, tok)
			return b.String(), true
		}
		return string(tok), true
	}
	return refPlaceholder.ReplaceAllStringFunc(text, func(ph string) string {
		inner := ph[2 : len(ph)-1]
		if v, ok := vars[inner]; ok {
			s, _ := value(v)
			return s
		}
		for _, f := range []string{"jsonEscape", "htmlEscape"} {
			if name, ok := strings.CutPrefix(inner, f+"("); ok && strings.HasSuffix(name, ")") {
				name = name[:len(name)-1]
				if v, ok := vars[name]; ok {
					s, _ := value(v)
					if f == "jsonEscape" {
						b, _ := json.Marshal(s) // then undo what Marshal does beyond the spec
						out := string(b[1 : len(b)-1])
						out = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\u2028`, "\u2028", `\u2029`, "\u2029").Replace(out)
						return out
					}
					return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
				}
			}
		}
		return ph
	})
}

// FuzzRender: compiling and rendering never panic, and on UTF-8 input the
// output equals the reference renderer's.
func FuzzRender(f *testing.F) {
	f.Add(`user ${a} on ${c} (${b}) ${jsonEscape(a)} ${htmlEscape(d)}`, []byte(kafkaEvent), `$.data.key`)
	f.Add(`{"who": "${a}", "all": ${d}}`, []byte(`{"a": [1, {"b": "x\"y"}], "c": 1.5e3}`), `$.a[1].b`)
	f.Add(`${a${c}} ${} ${ a } $${a} ${a`, []byte(`{"c": "\u00e9\n"}`), `$['c']`)
	f.Add(`${jsonEscape(d)}`, []byte(` {"c" : "<&>", "c": null} `), `$`)
	f.Add(`${a}`, []byte(`not json`), `$.x`)
	// Fixed values with an odd number of quotes, or an open escape, change
	// the string state of what follows them.
	f.Add(`{${f}":1${c}}`, []byte(`{"c": "}"}`), `$.c`)
	f.Add(`[${q}${c}", ${d}]`, []byte(`{"c": "\"],[1"}`), `$.c`)
	f.Add(`[${g}${c}"]`, []byte(`{"c": "n"}`), `$.c`)
	vars := func(p string) map[string]string {
		return map[string]string{"a": p, "b": `fixed <&> "q"`, "c": "$.c", "d": "$", "e": "$.c.e[0]",
			"f": `"p`, "q": `"`, "g": `"\`}
	}
	f.Fuzz(func(t *testing.T, text string, input []byte, path string) {
		v := vars(path)
		tpl, err := Compile(text, v)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("Compile error %T", err)
			}
			return
		}
		out, err := tpl.Render([]byte("pre"), input)
		if !bytes.HasPrefix(out, []byte("pre")) {
			t.Fatal("prefix lost")
		}
		out2, _, err2 := tpl.RenderReport(nil, input)
		if !bytes.Equal(out[3:], out2) || (err == nil) != (err2 == nil) {
			t.Fatalf("Render and RenderReport differ: %q (%v) vs %q (%v)", out[3:], err, out2, err2)
		}
		if err != nil {
			if len(out) != 3 {
				t.Fatalf("a failed render left %q", out)
			}
			if !tpl.JSON() && json.Valid(input) {
				t.Fatalf("text template %q failed on JSON input %q: %v", text, input, err)
			}
			return
		}
		if tpl.JSON() {
			// A JSON template renders JSON in valid UTF-8, or fails.
			if !json.Valid(out2) || !utf8.Valid(out2) {
				t.Fatalf("JSON template %q on %q rendered %q", text, input, out2)
			}
			return
		}
		if !utf8.Valid(input) || !utf8.ValidString(text) || len(input) > 8000 {
			return // encoding/json replaces bad UTF-8; the engine passes it through
		}
		if want := refRender(text, v, input); string(out2) != want {
			t.Fatalf("template %q vars %q on %q:\n got %q\nwant %q", text, v, input, out2, want)
		}
	})
}

// FuzzJSONStringTemplate: a JSON template whose variables all sit
// jsonEscape'd inside quotes renders valid JSON for any input, and the
// strings it holds are the input's.
func FuzzJSONStringTemplate(f *testing.F) {
	for _, s := range []string{"", "plain", `"`, `\`, "\x00\x1f", "a\u2028b", "</script>", "é😀", "\xff"} {
		in, _ := json.Marshal(map[string]any{"a": s, "b": []string{s}})
		f.Add(in)
	}
	f.Add([]byte(`{"a": {"x": "\"\\\n"}, "b": [[1, "\u0000"]]}`))
	f.Add([]byte(`{"a": "unterminated`))
	tpl, err := Compile(jsonStringTemplate, jsonStringVars)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkJSONStringRender(t, tpl, in)
	})
}

// FuzzJSONInjection: whatever the input's values hold, a JSON template
// renders an object with exactly its own members, each string member
// holding the input's value, or fails: a value can neither add members nor
// break the document.
func FuzzJSONInjection(f *testing.F) {
	for _, v := range []any{"o-1\",\"role\":\"admin", "a\\\"b\n", 17, "17", "1, \"x\": 2", map[string]any{"k": "v\""}, nil, "\xff", "</x>"} {
		in, _ := json.Marshal(map[string]any{"v": v, "w": []any{v}})
		f.Add(in)
	}
	f.Add([]byte(`{"v": "raw\xffbyte"}`))
	tpl, err := Compile(`{"s": "${v}", "h": "<${htmlEscape(v)}>", "j": "${jsonEscape(w)}", "n": ${v}, "k": "x"}`, map[string]string{"v": "$.v", "w": "$.w"})
	if err != nil || !tpl.JSON() {
		f.Fatalf("compile: %v (JSON %v)", err, tpl != nil && tpl.JSON())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := tpl.Render(nil, in)
		if err != nil {
			return
		}
		if !utf8.Valid(out) {
			t.Fatalf("input %q rendered invalid UTF-8 %q", in, out)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		tok, err := dec.Token()
		if err != nil || tok != json.Delim('{') {
			t.Fatalf("input %q rendered %q: not an object", in, out)
		}
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("input %q rendered %q: %v", in, out, err)
			}
			keys = append(keys, k.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("input %q rendered %q: %v", in, out, err)
			}
		}
		if strings.Join(keys, ",") != "s,h,j,n,k" {
			t.Fatalf("input %q rendered %q: members %v", in, out, keys)
		}
		if _, err := dec.Token(); err != nil {
			t.Fatalf("input %q rendered %q: %v", in, out, err)
		}
		if dec.More() {
			t.Fatalf("input %q rendered %q: text after the object", in, out)
		}
	})
}
