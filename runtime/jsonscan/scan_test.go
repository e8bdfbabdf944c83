package jsonscan

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var validityCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e10`, `-1E-2`, `true`, `false`, `null`,
	` {"a" : [1, 2, {"b": null}], "c": "x\"y\\u00e9\n"} `,
	`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `01`, `1.`, `.5`, `-`, `1e`, `"\x"`, `"\u12g4"`,
	"\"a\x01b\"", `tru`, `nul`, `[1 2]`, `{"a":1 "b":2}`, `"unterminated`, `{"a":1}x`, ``, `   `,
	`[[[[[]]]]]`, `{"\ud83d\ude00": "😀"}`, `"\ud800"`, `1e+5`, `-01`, `[-]`,
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, c := range validityCases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestValidAt(t *testing.T) {
	for _, c := range validityCases {
		data := []byte(c)
		i := SkipSpace(data, 0)
		end := ValidAt(data, i)
		got := end >= 0 && SkipSpace(data, end) == len(data)
		if want := json.Valid(data); got != want {
			t.Errorf("ValidAt(%q) = %d, encoding/json says valid=%v", c, end, want)
		}
	}
	// A valid value followed by anything: ValidAt stops right after it.
	for _, c := range []struct {
		in   string
		i    int
		want int
	}{
		{`{"a":1} trailing`, 0, 7},
		{`xx"s\n"yy`, 2, 7},
		{`[1,2]]`, 0, 5},
		{`123abc`, 0, 3},
		{`{"a":}`, 0, -1},
		{`"x`, 0, -1},
		{``, 0, -1},
		{`1`, -1, -1},
		{`1`, 5, -1},
	} {
		if got := ValidAt([]byte(c.in), c.i); got != c.want {
			t.Errorf("ValidAt(%q, %d) = %d, want %d", c.in, c.i, got, c.want)
		}
	}
}

// TestValidAtDepth: MaxDepth counts from the top of the document. A value
// depth levels down may nest MaxDepth - depth levels itself, as Valid
// accepts it within the whole document.
func TestValidAtDepth(t *testing.T) {
	nested := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	if !Valid(nested(MaxDepth)) || Valid(nested(MaxDepth+1)) {
		t.Fatalf("Valid: %d levels should pass, %d fail", MaxDepth, MaxDepth+1)
	}
	for _, c := range []struct{ levels, depth, want int }{
		{MaxDepth, 0, 2 * MaxDepth},
		{MaxDepth + 1, 0, -1},
		{MaxDepth - 5, 5, 2 * (MaxDepth - 5)},
		{MaxDepth - 4, 5, -1},
		{1, MaxDepth, -1},
		{1, MaxDepth - 1, 2},
	} {
		if got := ValidAtDepth(nested(c.levels), 0, c.depth); got != c.want {
			t.Errorf("ValidAtDepth(%d levels, depth %d) = %d, want %d", c.levels, c.depth, got, c.want)
		}
	}
	// Scalars hold no nesting: any depth passes them.
	if got := ValidAtDepth([]byte(`"s"`), 0, MaxDepth+7); got != 3 {
		t.Errorf("a string at depth %d: %d", MaxDepth+7, got)
	}
	if got := ValidAtDepth([]byte(`1`), 0, -1); got != -1 {
		t.Errorf("a negative depth: %d, want -1", got)
	}
}

func TestGet(t *testing.T) {
	doc := []byte(`{"data": {"value": {"order_id": "o-1", "amount": 12.5, "items": [{"sku": "A"}, {"sku": "B"}]}, "key": "k"},
		"a\"b": 1, "dup": 1, "dup": 2, "caf\u00e9": true}`)
	cases := []struct {
		path []Seg
		want string
		ok   bool
	}{
		{nil, string(bytes.TrimSpace(doc)), true},
		{[]Seg{{Key: "data"}, {Key: "value"}, {Key: "order_id"}}, `"o-1"`, true},
		{[]Seg{{Key: "data"}, {Key: "value"}, {Key: "amount"}}, `12.5`, true},
		{[]Seg{{Key: "data"}, {Key: "value"}, {Key: "items"}, {Index: 1, IsIndex: true}, {Key: "sku"}}, `"B"`, true},
		{[]Seg{{Key: "data"}, {Key: "value"}, {Key: "items"}, {Index: 2, IsIndex: true}}, ``, false},
		{[]Seg{{Key: `a"b`}}, `1`, true},
		{[]Seg{{Key: "dup"}}, `2`, true},
		{[]Seg{{Key: "café"}}, `true`, true},
		{[]Seg{{Key: "missing"}}, ``, false},
		{[]Seg{{Key: "data"}, {Key: "key"}, {Key: "deeper"}}, ``, false},
	}
	for _, c := range cases {
		s, e, ok := Get(doc, c.path)
		if ok != c.ok || (ok && string(doc[s:e]) != c.want) {
			t.Errorf("Get(%v) = %q, %v; want %q, %v", c.path, doc[s:e], ok, c.want, c.ok)
		}
	}
}

func TestMembersAndElements(t *testing.T) {
	doc := []byte(` { "a" : 1 , "b":[ 1 , "x" , {"c":2} ] , "e\n":{} } `)
	i := SkipSpace(doc, 0)
	it := MembersOf(doc, i)
	var keys []string
	var vals []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
		s, e := it.Value()
		vals = append(vals, string(doc[s:e]))
	}
	if it.Err() {
		t.Fatal("unexpected error")
	}
	if !reflect.DeepEqual(keys, []string{"a", "b", `e\n`}) || !reflect.DeepEqual(vals, []string{"1", `[ 1 , "x" , {"c":2} ]`, "{}"}) {
		t.Fatalf("keys %q vals %q", keys, vals)
	}
	s, _, _ := Get(doc, []Seg{{Key: "b"}})
	el := ElementsOf(doc, s)
	var els []string
	for el.Next() {
		s, e := el.Value()
		els = append(els, string(doc[s:e]))
	}
	if !reflect.DeepEqual(els, []string{"1", `"x"`, `{"c":2}`}) || el.Err() {
		t.Fatalf("elements %q err %v", els, el.Err())
	}
	bad := MembersOf([]byte(`{"a" 1}`), 0)
	for bad.Next() {
	}
	if !bad.Err() {
		t.Fatal("malformed object not reported")
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []string{`"plain"`, `"tab\there"`, `"q\"uote"`, `"\u00e9\ud83d\ude00"`, `"\ud800x"`, `"a\/b"`, `""`} {
		var want string
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatal(err)
		}
		got, ok := AppendString(nil, []byte(c))
		if !ok || string(got) != want {
			t.Errorf("AppendString(%s) = %q, %v; want %q", c, got, ok, want)
		}
		if !EscapedEqual([]byte(c[1:len(c)-1]), want) {
			t.Errorf("EscapedEqual(%s, %q) = false", c, want)
		}
		if EscapedEqual([]byte(c[1:len(c)-1]), want+"x") {
			t.Errorf("EscapedEqual(%s, %q+x) = true", c, want)
		}
		// round trip through AppendQuoted
		q := AppendQuoted(nil, []byte(want))
		var back string
		if err := json.Unmarshal(q, &back); err != nil || back != want {
			t.Errorf("AppendQuoted(%q) = %s, decodes to %q (%v)", want, q, back, err)
		}
	}
}

func TestCompact(t *testing.T) {
	in := []byte("{ \"a b\" : [ 1 ,\n 2 ], \"c\":\t\"x  y\" }")
	var want bytes.Buffer
	if err := json.Compact(&want, in); err != nil {
		t.Fatal(err)
	}
	if got := AppendCompact(nil, in); string(got) != want.String() {
		t.Fatalf("AppendCompact = %s, want %s", got, want.String())
	}
	if IsCompact(in) || !IsCompact(want.Bytes()) {
		t.Fatal("IsCompact wrong")
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range validityCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := Valid(data), json.Valid(data)
		if got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", data, got, want)
		}
		if !got {
			// Walking malformed input must not panic or loop.
			it := MembersOf(data, SkipSpace(data, 0))
			for it.Next() {
			}
			el := ElementsOf(data, SkipSpace(data, 0))
			for el.Next() {
			}
			Skip(data, SkipSpace(data, 0))
			return
		}
		i := SkipSpace(data, 0)
		end := Skip(data, i)
		if SkipSpace(data, end) != len(data) {
			t.Fatalf("Skip(%q) stopped at %d", data, end)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var c1 bytes.Buffer
		_ = json.Compact(&c1, data)
		if got := AppendCompact(nil, data[i:end]); !bytes.Equal(got, c1.Bytes()) {
			t.Fatalf("AppendCompact(%q) = %q, want %q", data, got, c1.Bytes())
		}
		// encoding/json reads bytes that are not UTF-8 as U+FFFD; the scanner
		// compares strings byte by byte, as docs/filters.md says, so keys
		// are compared with encoding/json's only for valid UTF-8 input.
		if m, ok := v.(map[string]any); ok && utf8.Valid(data) {
			for k, want := range m {
				s, e, ok := Get(data, []Seg{{Key: k}})
				if !ok {
					t.Fatalf("Get(%q) missing in %q", k, data)
				}
				var got any
				d := json.NewDecoder(bytes.NewReader(data[s:e]))
				d.UseNumber()
				if err := d.Decode(&got); err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("Get(%q) = %q, want %v", k, data[s:e], want)
				}
			}
		}
	})
}

var benchEvent = []byte(`{"specversion":"1.0","id":"gen-0-42","source":"sluice/generate","type":"sluice.generated","time":"2026-11-25T15:00:00.000Z","data":{"order_id":"o-000042","region":"eu-west-1","amount":129.5,"currency":"EUR","customer":{"id":"c-17","tier":"gold"},"items":3}}`)

func BenchmarkValid(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if !Valid(benchEvent) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkGet(b *testing.B) {
	path := []Seg{{Key: "data"}, {Key: "customer"}, {Key: "tier"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := Get(benchEvent, path); !ok {
			b.Fatal("missing")
		}
	}
}

func TestValidString(t *testing.T) {
	// Every special byte at every position around the 8-byte blocks.
	for n := 0; n < 20; n++ {
		for pos := 0; pos < n; pos++ {
			for _, special := range []string{`"`, `\\`, `\n`, `\u00e9`, "\x01", "\x1f", `\x`, "é", "\x7f", "\xff"} {
				body := []byte(strings.Repeat("a", n))
				s := append(append(append([]byte{'"'}, body[:pos]...), special...), body[pos:]...)
				s = append(s, '"')
				end, esc := ValidString(s, 0)
				wantValid := json.Valid(s)
				if (end == len(s)) != wantValid && !(special == `"` && end == pos+2) {
					t.Errorf("ValidString(%q) = %d, encoding/json says valid=%v", s, end, wantValid)
				}
				if end == len(s) && esc != strings.HasPrefix(special, `\`) {
					t.Errorf("ValidString(%q) escaped = %v", s, esc)
				}
				if got := ValidAt(s, 0); got != end {
					t.Errorf("ValidAt(%q) = %d, ValidString %d", s, got, end)
				}
			}
		}
	}
	for _, c := range []struct {
		in  string
		i   int
		end int
	}{{`x`, 0, -1}, {`"abc`, 0, -1}, {`""`, 5, -1}, {`""`, -1, -1}, {`a"b"`, 1, 4}} {
		if end, _ := ValidString([]byte(c.in), c.i); end != c.end {
			t.Errorf("ValidString(%q, %d) = %d, want %d", c.in, c.i, end, c.end)
		}
	}
}
