package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
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

// valuesEvent holds one value of each kind, with escapes and whitespace.
const valuesEvent = `{"s": "plain", "q": "say \"hi\"\n\tbye\\", "u": "caf\u00e9 \ud83d\ude00 a\/b",
 "ctl": "\u0001\u001f\b\f\r", "html": "<a href=\"x\">Tom & Jerry's</a>", "empty": "",
 "n": 1.50, "big": 12345678901234567890, "exp": -1E+3, "zero": -0, "t": true, "f": false, "z": null,
 "o": { "b" : 1, "a" : [ 1 , "x y" ], "q": "x\"y" }, "arr": [ {"k": 1}, "two", 3 ],
 "dup": 1, "dup": 2, "tmpl": "${s}", "sep": "\u2028"}`

func mustCompile(t testing.TB, text string, vars map[string]string) *Template {
	t.Helper()
	tpl, err := Compile(text, vars)
	if err != nil {
		t.Fatalf("Compile(%q, %v): %v", text, vars, err)
	}
	return tpl
}

func TestRender(t *testing.T) {
	cases := []struct {
		name  string
		vars  map[string]string
		text  string
		input string
		want  string
	}{
		// docs/transforms.md template examples.
		{"spec text", map[string]string{"k": "$.data.key", "p": "$.data.partition"}, `user ${k} on partition ${p}`, kafkaEvent,
			`user user-42 on partition 7`},
		{"spec json", map[string]string{"k": "$.data.key", "h": "$.data.headers"}, `{"who": "${k}", "hdr": ${h}, "v": 1}`, kafkaEvent,
			`{"who": "user-42", "hdr": {"headers":[],"isReadOnly":false}, "v": 1}`},
		{"spec config", map[string]string{"u": "$.data.key", "ms": "$.data.timestamp"}, `{"user": "${u}", "ms": ${ms}}`, kafkaEvent,
			`{"user": "user-42", "ms": 1655952591589}`},
		// Rendering table.
		{"string raw", map[string]string{"v": "$.s"}, `<${v}>`, valuesEvent, `<plain>`},
		{"string decoded", map[string]string{"v": "$.q"}, `<${v}>`, valuesEvent, "<say \"hi\"\n\tbye\\>"},
		{"string unicode", map[string]string{"v": "$.u"}, `${v}`, valuesEvent, "café 😀 a/b"},
		{"string empty", map[string]string{"v": "$.empty"}, `<${v}>`, valuesEvent, `<>`},
		{"string value not re-expanded", map[string]string{"v": "$.tmpl", "s": "$.s"}, `${v} ${s}`, valuesEvent, `${s} plain`},
		{"number text kept", map[string]string{"a": "$.n", "b": "$.big", "c": "$.exp", "d": "$.zero"}, `${a} ${b} ${c} ${d}`, valuesEvent,
			`1.50 12345678901234567890 -1E+3 -0`},
		{"literals", map[string]string{"t": "$.t", "f": "$.f", "z": "$.z"}, `${t},${f},${z}`, valuesEvent, `true,false,null`},
		{"object compact in event order", map[string]string{"o": "$.o"}, `${o}`, valuesEvent, `{"b":1,"a":[1,"x y"],"q":"x\"y"}`},
		{"array compact", map[string]string{"a": "$.arr"}, `${a}`, valuesEvent, `[{"k":1},"two",3]`},
		{"index", map[string]string{"a": "$.arr[1]", "b": "$.arr[0].k", "c": "$.o.a[1]"}, `${a} ${b} ${c}`, valuesEvent, `two 1 x y`},
		{"missing path empty", map[string]string{"m": "$.nope", "d": "$.s.deeper", "i": "$.arr[9]"}, `[${m}|${d}|${i}]`, valuesEvent, `[||]`},
		{"duplicate key last wins", map[string]string{"d": "$.dup"}, `${d}`, valuesEvent, `2`},
		{"whole input", map[string]string{"all": "$"}, `${all}`, `  {"a" : [1, 2]} `, `{"a":[1,2]}`},
		{"whole input string", map[string]string{"all": "$"}, `<${all}>`, `"x\ty"`, "<x\ty>"},
		{"same path twice", map[string]string{"a": "$.s", "b": "$.s"}, `${a}${b}${a}`, valuesEvent, `plainplainplain`},
		{"unused variable", map[string]string{"a": "$.s", "unused": "$.nope"}, `${a}`, valuesEvent, `plain`},
		// jsonEscape.
		{"jsonEscape plain", map[string]string{"v": "$.s"}, `"${jsonEscape(v)}"`, valuesEvent, `"plain"`},
		{"jsonEscape quotes newline backslash", map[string]string{"v": "$.q"}, `"${jsonEscape(v)}"`, valuesEvent, `"say \"hi\"\n\tbye\\"`},
		{"jsonEscape keeps slash and non-ASCII", map[string]string{"v": "$.u"}, `${jsonEscape(v)}`, valuesEvent, "café 😀 a/b"},
		{"jsonEscape control chars", map[string]string{"v": "$.ctl"}, `${jsonEscape(v)}`, valuesEvent, `\u0001\u001f\b\f\r`},
		{"jsonEscape keeps U+2028", map[string]string{"v": "$.sep"}, `${jsonEscape(v)}`, valuesEvent, "\u2028"},
		{"jsonEscape object", map[string]string{"v": "$.o"}, `"${jsonEscape(v)}"`, valuesEvent, `"{\"b\":1,\"a\":[1,\"x y\"],\"q\":\"x\\\"y\"}"`},
		{"jsonEscape number literal", map[string]string{"n": "$.n", "z": "$.z"}, `${jsonEscape(n)} ${jsonEscape(z)}`, valuesEvent, `1.50 null`},
		{"jsonEscape missing", map[string]string{"v": "$.nope"}, `"${jsonEscape(v)}"`, valuesEvent, `""`},
		{"jsonEscape fixed", map[string]string{"v": `a "b" \ c`}, `"${jsonEscape(v)}"`, valuesEvent, `"a \"b\" \\ c"`},
		// htmlEscape.
		{"htmlEscape", map[string]string{"v": "$.html"}, `${htmlEscape(v)}`, valuesEvent, `&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry's&lt;/a&gt;`},
		{"htmlEscape plain", map[string]string{"v": "$.s"}, `${htmlEscape(v)}`, valuesEvent, `plain`},
		{"htmlEscape object", map[string]string{"v": "$.o"}, `${htmlEscape(v)}`, valuesEvent, `{&quot;b&quot;:1,&quot;a&quot;:[1,&quot;x y&quot;],&quot;q&quot;:&quot;x\&quot;y&quot;}`},
		{"htmlEscape fixed", map[string]string{"v": `<&>"'`}, `${htmlEscape(v)}`, valuesEvent, `&lt;&amp;&gt;&quot;'`},
		{"htmlEscape number", map[string]string{"v": "$.big"}, `${htmlEscape(v)}`, valuesEvent, `12345678901234567890`},
		// Fixed values.
		{"fixed value", map[string]string{"env": "prod", "k": "$.data.key"}, `${env}/${k}`, kafkaEvent, `prod/user-42`},
		{"fixed value verbatim", map[string]string{"v": "x ${k} and $x"}, `${v}`, kafkaEvent, `x ${k} and $x`},
		{"fixed empty", map[string]string{"v": ""}, `[${v}]`, kafkaEvent, `[]`},
		{"fixed with leading space is not a path", map[string]string{"v": " $.data.key"}, `${v}`, kafkaEvent, ` $.data.key`},
		// Placeholder syntax.
		{"undefined left unchanged", map[string]string{"k": "$.data.key"}, `${nope} ${k} ${jsonEscape(nope)} ${htmlEscape()}`, kafkaEvent,
			`${nope} user-42 ${jsonEscape(nope)} ${htmlEscape()}`},
		{"spaces are part of the name", map[string]string{"k": "$.data.key"}, `${ k }`, kafkaEvent, `${ k }`},
		{"empty placeholder", map[string]string{"k": "$.data.key"}, `${}`, kafkaEvent, `${}`},
		{"unterminated", map[string]string{"k": "$.data.key"}, `a ${k`, kafkaEvent, `a ${k`},
		{"dollar before placeholder", map[string]string{"k": "$.data.key"}, `$${k} $ {k} $k {k}`, kafkaEvent, `$user-42 $ {k} $k {k}`},
		{"nested opening", map[string]string{"k": "$.data.key"}, `${a${k}}`, kafkaEvent, `${auser-42}`},
		{"adjacent", map[string]string{"k": "$.data.key", "p": "$.data.partition"}, `${k}${p}${k}`, kafkaEvent, `user-427user-42`},
		{"name with dots", map[string]string{"a.b": "$.data.key"}, `${a.b}`, kafkaEvent, `user-42`},
		{"variable named like a function", map[string]string{"jsonEscape(k)": "lit", "k": "$.data.key"}, `${jsonEscape(k)}`, kafkaEvent, `lit`},
		{"unicode name and text", map[string]string{"ключ": "$.data.key"}, `→ ${ключ} ←`, kafkaEvent, `→ user-42 ←`},
		{"no placeholders", nil, `just text`, kafkaEvent, `just text`},
		{"empty template", nil, ``, kafkaEvent, ``},
		// Inputs that are not JSON fail: TestRenderNeedsJSONInput.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl := mustCompile(t, c.text, c.vars)
			prefix := []byte("prefix:")
			got, err := tpl.Render(prefix, []byte(c.input))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if string(got) != "prefix:"+c.want {
				t.Fatalf("render = %q\nwant     %q", got[len(prefix):], c.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	type want struct {
		code, v string
		offset  int
		msg     string
	}
	long := strings.Repeat("é", MaxValueLen+1)
	cases := []struct {
		name string
		text string
		vars map[string]string
		want []want
	}{
		{"wildcard", `${a}`, map[string]string{"a": "$.items[*].id"}, []want{{CodeJSONPathInvalid, "a", 8, "wildcard"}}},
		{"recursive", `${a}`, map[string]string{"a": "$..id"}, []want{{CodeJSONPathInvalid, "a", 1, "recursive"}}},
		{"filter", `${a}`, map[string]string{"a": "$.a[?(@.x)]"}, []want{{CodeJSONPathInvalid, "a", 4, "filters"}}},
		{"slice", `${a}`, map[string]string{"a": "$.a[0:1]"}, []want{{CodeJSONPathInvalid, "a", 5, "slices"}}},
		{"union", `${a}`, map[string]string{"a": "$['a','b']"}, []want{{CodeJSONPathInvalid, "a", 5, "unions"}}},
		{"bad syntax", `${a}`, map[string]string{"a": "$data"}, []want{{CodeJSONPathInvalid, "a", 1, "expected . or ["}}},
		{"a value starting with $ is a path", `${a}`, map[string]string{"a": "${k} text"}, []want{{CodeJSONPathInvalid, "a", 1, "expected . or ["}}},
		{"unused variable still checked", `x`, map[string]string{"a": "$.a[*]"}, []want{{CodeJSONPathInvalid, "a", 4, "wildcard"}}},
		{"every problem, sorted", strings.Repeat("x", MaxTemplateLen+1), map[string]string{"b": "$.b[*]", "a": "$.a[-1]", "c": long, "ok": "$.ok"},
			[]want{{CodeTooLong, "", MaxTemplateLen, "10241 characters"}, {CodeJSONPathInvalid, "a", 4, "negative"},
				{CodeJSONPathInvalid, "b", 4, "wildcard"}, {CodeTooLong, "c", 2 * MaxValueLen, "10241 characters"}}},
		{"long path", `${p}`, map[string]string{"p": "$." + strings.Repeat("a", MaxValueLen-1)}, []want{{CodeTooLong, "p", MaxValueLen, "at most 10240"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := Compile(c.text, c.vars)
			var errs Errors
			if !errors.As(err, &errs) || tpl != nil {
				t.Fatalf("Compile = %v, %v; want Errors", tpl, err)
			}
			if len(errs) != len(c.want) {
				t.Fatalf("got %d errors (%v), want %d", len(errs), err, len(c.want))
			}
			for i, w := range c.want {
				e := errs[i]
				if e.Code != w.code || e.Var != w.v || e.Offset != w.offset || !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d = %+v, want %+v", i, *e, w)
				}
				if !strings.HasPrefix(e.Error(), w.code+": ") {
					t.Errorf("Error() = %q", e.Error())
				}
			}
		})
	}
}

func TestLimitsCountCodePoints(t *testing.T) {
	// Multi-byte characters: a byte count would reject these.
	for _, ch := range []string{"x", "é", "😀"} {
		okText := strings.Repeat(ch, MaxTemplateLen)
		if _, err := Compile(okText, nil); err != nil {
			t.Errorf("template of %d %q: %v", MaxTemplateLen, ch, err)
		}
		if _, err := Compile(okText+ch, nil); err == nil || err.(Errors)[0].Code != CodeTooLong || err.(Errors)[0].Offset != len(okText) {
			t.Errorf("template of %d %q: err %v", MaxTemplateLen+1, ch, err)
		}
		okVal := strings.Repeat(ch, MaxValueLen)
		tpl, err := Compile(`${v}`, map[string]string{"v": okVal})
		if err != nil {
			t.Errorf("value of %d %q: %v", MaxValueLen, ch, err)
		} else if got, _ := tpl.Render(nil, nil); string(got) != okVal {
			t.Errorf("fixed value rendered %d bytes", len(got))
		}
		if _, err := Compile(`${v}`, map[string]string{"v": okVal + ch}); err == nil || err.(Errors)[0].Code != CodeTooLong {
			t.Errorf("value of %d %q: err %v", MaxValueLen+1, ch, err)
		}
	}
	// A path of exactly the limit is accepted.
	p := "$." + strings.Repeat("ä", MaxValueLen-2)
	if _, err := Compile(`${p}`, map[string]string{"p": p}); err != nil {
		t.Fatalf("path of %d code points: %v", MaxValueLen, err)
	}
}

func TestRuneOffset(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want int
	}{{"abc", 0, 0}, {"abc", 2, 2}, {"abc", 3, 3}, {"abc", 9, 3}, {"éé", 1, 2}, {"😀x", 1, 4}} {
		if got := RuneOffset(c.s, c.n); got != c.want {
			t.Errorf("RuneOffset(%q, %d) = %d, want %d", c.s, c.n, got, c.want)
		}
	}
}

func TestAppendRenderReport(t *testing.T) {
	tpl := mustCompile(t, `${v}`, map[string]string{"v": "$.v"})
	render := func(v string) bool {
		in, _ := json.Marshal(map[string]string{"v": v})
		out, over, _ := tpl.RenderReport(nil, in)
		if string(out) != v {
			t.Fatalf("rendered %d bytes, want %d", len(out), len(v))
		}
		return over
	}
	if render(strings.Repeat("é", MaxValueLen)) { // 20,480 bytes, 10,240 characters
		t.Error("10,240 characters flagged")
	}
	if !render(strings.Repeat("x", MaxValueLen+1)) {
		t.Error("10,241 characters not flagged")
	}
	// Escapes make the token longer than the value: not flagged.
	if render(strings.Repeat("\"", MaxValueLen)) {
		t.Error("10,240 escaped quotes flagged")
	}
	_, over, _ := tpl.RenderReport(nil, []byte(`{"v": [`+strings.Repeat(`1, `, 6000)+`1]}`))
	if !over {
		t.Error("long array not flagged")
	}
}

func TestManySlotsUsePool(t *testing.T) {
	vars := map[string]string{}
	var text, want, in strings.Builder
	in.WriteString("{")
	for i := range 40 {
		name := fmt.Sprintf("v%d", i)
		vars[name] = "$." + name
		fmt.Fprintf(&text, "${%s},", name)
		fmt.Fprintf(&want, "%d,", i*i)
		if i > 0 {
			in.WriteString(",")
		}
		fmt.Fprintf(&in, `"%s": %d`, name, i*i)
	}
	in.WriteString("}")
	tpl := mustCompile(t, text.String(), vars)
	for range 3 {
		if got, _ := tpl.Render(nil, []byte(in.String())); string(got) != want.String() {
			t.Fatalf("got %s", got)
		}
	}
}

func TestRenderDoesNotAllocate(t *testing.T) {
	tpl := mustCompile(t, `{"who": "${jsonEscape(k)}", "hdr": ${h}, "p": ${p}, "h": "${htmlEscape(q)}"}`,
		map[string]string{"k": "$.data.key", "h": "$.data.headers", "p": "$.data.partition", "q": "$.data.value"})
	in := []byte(kafkaEvent)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(200, func() { buf, _ = tpl.Render(buf[:0], in) }); n != 0 {
		t.Fatalf("AppendRender allocates %v times per run", n)
	}
	want := `{"who": "user-42", "hdr": {"headers":[],"isReadOnly":false}, "p": 7, "h": "{&quot;page&quot;:&quot;/home&quot;,&quot;ms&quot;:31}"}`
	if string(buf) != want {
		t.Fatalf("got %s", buf)
	}
}

func TestConcurrentRender(t *testing.T) {
	tpl := mustCompile(t, `${k}:${p}`, map[string]string{"k": "$.data.key", "p": "$.data.partition"})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := []byte(fmt.Sprintf(`{"data": {"key": "g%d", "partition": %d}}`, g, g))
			want := fmt.Sprintf("g%d:%d", g, g)
			var buf []byte
			for range 500 {
				buf, _ = tpl.Render(buf[:0], in)
				if string(buf) != want {
					t.Errorf("got %s want %s", buf, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// jsonStringTemplate is a JSON template whose every variable is a
// jsonEscape'd string inside quotes: it must render valid JSON for any input.
const jsonStringTemplate = `{"a": "${jsonEscape(a)}", "b": "${jsonEscape(b)}", "all": "${jsonEscape(all)}"}`

var jsonStringVars = map[string]string{"a": "$.a", "b": "$.b[0]", "all": "$"}

func TestJSONEscapedTemplateIsValidJSON(t *testing.T) {
	tpl := mustCompile(t, jsonStringTemplate, jsonStringVars)
	for _, s := range []string{"", "plain", `"`, `\`, "\x00\x1f\x7f", "a\u2028b", "</script>", "é😀", "\xff\xfe", `\u0000`} {
		in, _ := json.Marshal(map[string]any{"a": s, "b": []string{s}})
		checkJSONStringRender(t, tpl, in)
	}
}

// checkJSONStringRender renders jsonStringTemplate over in and checks the
// output is valid JSON whose strings are the input's values.
func checkJSONStringRender(t *testing.T, tpl *Template, in []byte) {
	t.Helper()
	out, err := tpl.Render(nil, in)
	if !json.Valid(in) {
		if err == nil {
			t.Fatalf("non-JSON input %q rendered %q", in, out)
		}
		return
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("input %q rendered invalid JSON %q: %v", in, out, err)
	}
	var doc any
	_ = json.Unmarshal(in, &doc) // fails on valid JSON such as 1E700: then nothing to compare
	m, _ := doc.(map[string]any)
	if s, ok := m["a"].(string); ok && got["a"] != s {
		t.Fatalf("a: input %q rendered %q, want %q", in, got["a"], s)
	}
	if l, ok := m["b"].([]any); ok && len(l) > 0 {
		if s, ok := l[0].(string); ok && got["b"] != s {
			t.Fatalf("b: input %q rendered %q, want %q", in, got["b"], s)
		}
	}
}

// TestRenderIsBounded: a template's output had no bound: ${a} repeated
// 2,560 times over a 1 MiB value rendered about 2.5 GiB for one event. A
// render past its limit (OutputLimit of the task's max_event_size: 4 MiB +
// 64 KiB by default) now fails, giving the size reached and the limit, and
// stops at the first value past it instead of rendering the whole.
func TestRenderIsBounded(t *testing.T) {
	if got, want := OutputLimit(0), 4<<20+64<<10; got != want {
		t.Fatalf("OutputLimit(0) = %d, want %d", got, want)
	}
	if got := OutputLimit(1024); got != 4096+64<<10 {
		t.Fatalf("OutputLimit(1024) = %d", got)
	}
	if got := OutputLimit(math.MaxInt / 2); got != math.MaxInt {
		t.Fatalf("OutputLimit(MaxInt/2) = %d, want MaxInt", got)
	}

	tpl := mustCompile(t, strings.Repeat("${a}", 2560), map[string]string{"a": "$.a"})
	in := []byte(`{"a":"` + strings.Repeat("x", 1<<20) + `"}`)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	out, err := tpl.Render([]byte("keep"), in)
	runtime.ReadMemStats(&ms)
	if err == nil || string(out) != "keep" {
		t.Fatalf("rendered %d bytes, %v; want a failure and dst as it was", len(out), err)
	}
	// 4 values fit in 4 MiB + 64 KiB, the 5th passes it.
	if want := "the output reached 5242880 bytes after ${a}, over the limit of 4259840 bytes"; !strings.Contains(err.Error(), want) {
		t.Fatalf("%v; want it to say %q", err, want)
	}
	if grown := ms.TotalAlloc - before; grown > 64<<20 {
		t.Fatalf("the failed render allocated %d MiB: it did not stop at the limit", grown>>20)
	}

	// The limit is exact, counts bytes, and holds for fixed text too.
	two := mustCompile(t, `${a}${a}`, map[string]string{"a": "$.a"}).WithLimit(100)
	for _, c := range []struct {
		n   int
		err string
	}{{50, ""}, {51, "reached 102 bytes after ${a}, over the limit of 100 bytes"}} {
		out, err := two.Render(nil, []byte(`{"a":"`+strings.Repeat("é", c.n/2)+strings.Repeat("x", c.n%2)+`"}`))
		if c.err == "" && (err != nil || len(out) != 2*c.n) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || len(out) != 0) {
			t.Errorf("a value of %d bytes twice, limit 100: %d bytes, %v; want error %q", c.n, len(out), err, c.err)
		}
	}
	for _, c := range []struct {
		text string
		vars map[string]string
		err  string
	}{
		{"0123456789", nil, "reached 10 bytes with its fixed text alone"},
		{"${f}${f}", map[string]string{"f": "01234"}, "reached 10 bytes with its fixed text alone"},
		{"0123456789${a}", map[string]string{"a": "$.a"}, "reached 10 bytes with its fixed text,"},
	} {
		tpl := mustCompile(t, c.text, c.vars)
		if _, err := tpl.WithLimit(10).Render(nil, []byte(`{}`)); err != nil {
			t.Errorf("%s, limit 10: %v", c.text, err)
		}
		if out, err := tpl.WithLimit(9).Render(nil, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), c.err) || len(out) != 0 {
			t.Errorf("%s, limit 9: %q, %v; want %q", c.text, out, err, c.err)
		}
	}
	// WithLimit leaves the compiled template as it was.
	if _, err := two.Render(nil, []byte(`{"a":"`+strings.Repeat("x", 60)+`"}`)); err == nil {
		t.Error("limit 100 not applied")
	}
	base := mustCompile(t, `${a}${a}`, map[string]string{"a": "$.a"})
	_ = base.WithLimit(1)
	if _, err := base.Render(nil, []byte(`{"a":"xx"}`)); err != nil {
		t.Errorf("WithLimit changed the template it was called on: %v", err)
	}
}
