package jsonpath

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

func key(k string) jsonscan.Seg { return jsonscan.Seg{Key: k} }
func idx(n int) jsonscan.Seg    { return jsonscan.Seg{Index: n, IsIndex: true} }

func TestParseValid(t *testing.T) {
	cases := []struct {
		path string
		want []jsonscan.Seg
	}{
		{`$`, []jsonscan.Seg{}},
		{`$.data.key`, []jsonscan.Seg{key("data"), key("key")}},
		{`$.data.partition`, []jsonscan.Seg{key("data"), key("partition")}},
		{`$.data.x-request-id`, []jsonscan.Seg{key("data"), key("x-request-id")}},
		{`$.a_b.C9.1st.-`, []jsonscan.Seg{key("a_b"), key("C9"), key("1st"), key("-")}},
		{`$.café.日本`, []jsonscan.Seg{key("café"), key("日本")}},
		{`$['a b']`, []jsonscan.Seg{key("a b")}},
		{`$["a b"]`, []jsonscan.Seg{key("a b")}},
		{`$['']`, []jsonscan.Seg{key("")}},
		{`$['a.b']['c[0]']`, []jsonscan.Seg{key("a.b"), key("c[0]")}},
		{`$["it's"]`, []jsonscan.Seg{key("it's")}},
		{`$['it\'s']`, []jsonscan.Seg{key("it's")}},
		{`$["say \"hi\""]`, []jsonscan.Seg{key(`say "hi"`)}},
		{`$['a\\b\/c']`, []jsonscan.Seg{key(`a\b/c`)}},
		{`$['\b\f\n\r\t']`, []jsonscan.Seg{key("\b\f\n\r\t")}},
		{`$['\u00e9\ud83d\ude00']`, []jsonscan.Seg{key("é😀")}},
		{`$[0]`, []jsonscan.Seg{idx(0)}},
		{`$.items[10].id`, []jsonscan.Seg{key("items"), idx(10), key("id")}},
		{`$[2147483647]`, []jsonscan.Seg{idx(MaxIndex)}},
		{`$[0][1]['x'].y`, []jsonscan.Seg{idx(0), idx(1), key("x"), key("y")}},
		{`$.data['value'].page`, []jsonscan.Seg{key("data"), key("value"), key("page")}},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			got, err := Parse(c.path)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.path, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", c.path, got, c.want)
			}
			back, err := Parse(Format(got))
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("Format round trip %q -> %q -> %#v, %v", c.path, Format(got), back, err)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		path   string
		offset int
		msg    string // substring of the message
	}{
		{``, 0, "must start with $"},
		{`data.key`, 0, "must start with $"},
		{` $.a`, 0, "must start with $"},
		{`$a`, 1, "expected . or ["},
		{`$.a `, 3, "expected . or ["},
		{`$.`, 2, "a name must follow"},
		{`$.a.`, 4, "a name must follow"},
		{`$..a`, 1, "recursive descent"},
		{`$.a..b`, 3, "recursive descent"},
		{`$.*`, 2, "wildcard"},
		{`$.items[*].id`, 8, "wildcard"},
		{`$[*]`, 2, "wildcard"},
		{`$.a[?(@.b)]`, 4, "filters"},
		{`$.a[0:2]`, 5, "slices"},
		{`$.a[:2]`, 4, "slices"},
		{`$.a[0,1]`, 5, "unions"},
		{`$['a','b']`, 5, "unions"},
		{`$.a[-1]`, 4, "negative"},
		{`$.a[01]`, 4, "leading zeros"},
		{`$.a[2147483648]`, 4, "too large"},
		{`$.a[99999999999999999999]`, 4, "too large"},
		{`$.a[`, 4, "unclosed"},
		{`$.a[1`, 5, "unclosed"},
		{`$.a[1 ]`, 5, "expected ']'"},
		{`$.a['b'`, 7, "unclosed"},
		{`$.a['b' ]`, 7, "expected ']'"},
		{`$.a['b`, 6, "unterminated"},
		{`$.a[]`, 4, "empty brackets"},
		{`$.a[b]`, 4, "expected a quoted name or an index"},
		{`$.a[ 0]`, 4, "expected a quoted name or an index"},
		{`$.a.[0]`, 3, "not '['"},
		{`$.a b`, 3, "expected . or ["},
		{`$.a$`, 3, "expected . or ["},
		{`$.a/b`, 3, "expected . or ["},
		{`$.{`, 2, "not allowed in a .name"},
		{`$['a\x']`, 4, "invalid escape"},
		{`$['a\"']`, 4, "invalid escape"},
		{`$["a\'"]`, 4, "invalid escape"},
		{`$['\u12']`, 3, "invalid escape"},
		{`$['\ud800']`, 3, "invalid escape"},
		{`$['\udc00\ud800']`, 3, "invalid escape"},
		{"$['a\tb']", 4, "control character"},
		{"$.a\xff", 3, "not valid UTF-8"},
		{"$['\xffa']", 3, "not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			_, err := Parse(c.path)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want *Error", c.path, err)
			}
			if pe.Offset != c.offset || !strings.Contains(pe.Msg, c.msg) || pe.Path != c.path {
				t.Fatalf("Parse(%q) error at %d %q, want at %d containing %q", c.path, pe.Offset, pe.Msg, c.offset, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "path ") {
				t.Fatalf("Error() = %q", err.Error())
			}
		})
	}
}

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

func TestSetResolve(t *testing.T) {
	doc := `{"a": {"b": [10, {"c": "x"}, [true]], "d": null}, "e\u0301": 1, "dup": {"x": 1, "y": 2}, "dup": {"x": 3},
	"esc\"k": "q", "n": -1.5e3, "arr": [[], {}], "a\\b": 4, "a\u005cb": 5, "x\ny": 6}`
	cases := []struct {
		path string
		want string // "" = not found
	}{
		{`$`, strings.TrimSpace(doc)},
		{`$.a`, `{"b": [10, {"c": "x"}, [true]], "d": null}`},
		{`$.a.b`, `[10, {"c": "x"}, [true]]`},
		{`$.a.b[0]`, `10`},
		{`$.a.b[1].c`, `"x"`},
		{`$.a.b[2][0]`, `true`},
		{`$.a.b[3]`, ``},
		{`$.a.b.c`, ``},
		{`$.a.d`, `null`},
		{`$.a.d.x`, ``},
		{`$['é']`, ``}, // precomposed é is not e + combining accent
		{"$['e\u0301']", `1`},
		{`$.dup.x`, `3`},
		{`$.dup.y`, ``}, // the last duplicate wins as a whole
		{`$['esc"k']`, `"q"`},
		{`$.n`, `-1.5e3`},
		{`$.arr[0]`, `[]`},
		{`$.arr[1]`, `{}`},
		{`$.arr[0][0]`, ``},
		{`$[0]`, ``},
		{`$['a\\b']`, `5`},
		{`$.missing`, ``},
		{`$['x\ny']`, `6`}, // path escape \n = newline = JSON escape \n
		{`$['x\\ny']`, ``}, // a backslash and an n: same raw bytes, different key
	}
	set := NewSet()
	slots := map[string]int{}
	for _, c := range cases {
		segs, err := Parse(c.path)
		if err != nil {
			t.Fatal(err)
		}
		slots[c.path] = set.Add(segs)
	}
	spans := make([]Span, set.Slots())
	if !set.Resolve([]byte(doc), spans) {
		t.Fatal("Resolve reported invalid JSON")
	}
	for _, c := range cases {
		sp := spans[slots[c.path]]
		got := ""
		if sp.Found() {
			got = doc[sp.Start:sp.End]
		}
		if got != c.want {
			t.Errorf("%s = %q, want %q", c.path, got, c.want)
		}
		// jsonscan.Get agrees on valid input.
		segs, _ := Parse(c.path)
		s, e, ok := jsonscan.Get([]byte(doc), segs)
		if ok != sp.Found() || (ok && (s != sp.Start || e != sp.End)) {
			t.Errorf("%s: Set found %v %v, jsonscan.Get %v %d..%d", c.path, sp.Found(), sp, ok, s, e)
		}
	}
}

func TestSetSamePathSameSlot(t *testing.T) {
	set := NewSet()
	a := set.Add([]jsonscan.Seg{key("a"), idx(0)})
	b := set.Add([]jsonscan.Seg{key("a")})
	c := set.Add([]jsonscan.Seg{key("a"), idx(0)})
	d := set.Add(nil)
	if a != c || a == b || set.Slots() != 3 || d != 2 {
		t.Fatalf("slots %d %d %d %d, Slots %d", a, b, c, d, set.Slots())
	}
}

func TestSetInvalidJSONFindsNothing(t *testing.T) {
	set := NewSet()
	root := set.Add(nil)
	a := set.Add([]jsonscan.Seg{key("a")})
	for _, doc := range []string{
		``, `   `, `user user-42 on partition 7`, `{"a": 1} trailing`, `{"a": 1}{"a": 2}`, `{"a": 1,}`,
		`{"a": 1, "b": }`, `{"a": 1, "b": [1 2]}`, `{"a": "x` + "\x01" + `"}`, `{"a": 1`, `{"a" 1}`, `{a: 1}`,
		`{"a": 01}`, `{"a": tru}`, `{"a\x": 1}`, `[1,]`, `"unterminated`, `{"a": {"b": 1}`,
	} {
		spans := []Span{{1, 2}, {3, 4}}
		if set.Resolve([]byte(doc), spans) {
			t.Errorf("Resolve(%q) = true, want false", doc)
		}
		if spans[root].Found() || spans[a].Found() {
			t.Errorf("Resolve(%q) left spans %v", doc, spans)
		}
	}
	spans := make([]Span, 2)
	if !set.Resolve([]byte(" \n{\"a\": 1}\t "), spans) || !spans[a].Found() || spans[root] != (Span{2, 10}) {
		t.Fatalf("whitespace around the document: %v", spans)
	}
}

func TestResolveAllocs(t *testing.T) {
	set := NewSet()
	for _, p := range []string{`$.data.key`, `$.data.timestamp`, `$.data.headers`} {
		segs, _ := Parse(p)
		set.Add(segs)
	}
	var spans [3]Span
	doc := []byte(kafkaEvent)
	if n := testing.AllocsPerRun(100, func() { set.Resolve(doc, spans[:]) }); n != 0 {
		t.Fatalf("Resolve allocates %v times", n)
	}
	if got := doc[spans[0].Start:spans[0].End]; string(got) != `"user-42"` {
		t.Fatalf("key = %s", got)
	}
}

func BenchmarkResolve3(b *testing.B) {
	set := NewSet()
	for _, p := range []string{`$.data.key`, `$.data.timestamp`, `$.data.headers`} {
		segs, _ := Parse(p)
		set.Add(segs)
	}
	var spans [3]Span
	doc := []byte(compactKafkaEvent)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if !set.Resolve(doc, spans[:]) {
			b.Fatal("invalid")
		}
	}
}

// compactKafkaEvent is kafkaEvent without whitespace (about 420 bytes).
var compactKafkaEvent = string(jsonscan.AppendCompact(nil, []byte(kafkaEvent)))

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(`$.data['value'].items[3].id`); err != nil {
			b.Fatal(err)
		}
	}
}

// TestResolveNestingLimitCountsFromTheTop: docs/security.md says the
// scanner stops at 10,000 levels ("such a value is not JSON for Sluice"),
// and Resolve returns false when data is not a valid JSON value. Resolve
// counted the depth again from 0 below every path step it walked, so a
// document nested 10,000 + k levels was accepted by a path k steps deep
// while jsonscan.Valid rejects it, and a partial or template rendered it.
// Resolve now agrees with jsonscan.Valid at the limit, whatever the path.
func TestResolveNestingLimitCountsFromTheTop(t *testing.T) {
	// doc nests levels in all: an object with a at the top, the rest under
	// $.a as arrays, and [7] at the bottom of $.a[0][0]...
	doc := func(levels int) []byte {
		inner := levels - 1
		return []byte(`{"a":` + strings.Repeat("[", inner-1) + `[7]` + strings.Repeat("]", inner-1) + `}`)
	}
	for _, path := range []string{"$", "$.a", "$.a[0]", "$.a[0][0][0]", "$.b", "$.a[1]"} {
		segs, err := Parse(path)
		if err != nil {
			t.Fatal(err)
		}
		s := NewSet()
		s.Add(segs)
		spans := make([]Span, s.Slots())
		for _, levels := range []int{jsonscan.MaxDepth, jsonscan.MaxDepth + 1} {
			d := doc(levels)
			if got, want := s.Resolve(d, spans), jsonscan.Valid(d); got != want {
				t.Errorf("%s over a document nested %d levels: Resolve = %v, jsonscan.Valid = %v", path, levels, got, want)
			}
		}
	}
	if jsonscan.Valid(doc(jsonscan.MaxDepth+1)) || !jsonscan.Valid(doc(jsonscan.MaxDepth)) {
		t.Fatal("the documents do not straddle the limit")
	}
}
