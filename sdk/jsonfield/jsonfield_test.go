package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

const doc = `{"a":1,"b":{"c":"x\"y","d":[10,{"e":true}],"f":null},"g\u0068":"u","s":"caf\u00e9 \ud83d\ude00"}`

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want string
		ok   bool
	}{
		{[]string{"a"}, "1", true},
		{[]string{"b", "c"}, `"x\"y"`, true},
		{[]string{"b", "d", "1", "e"}, "true", true},
		{[]string{"b", "d", "2"}, "", false},
		{[]string{"b", "f"}, "null", true},
		{[]string{"gh"}, `"u"`, true},
		{[]string{"zz"}, "", false},
		{[]string{"a", "x"}, "", false},
		{nil, doc, true},
	} {
		got, ok := Get([]byte(doc), tc.path...)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("Get(%v) = %s, %v; want %s, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if s, ok := GetString([]byte(doc), "b", "c"); !ok || string(s) != `x"y` {
		t.Errorf("GetString = %q %v", s, ok)
	}
	if s, ok := GetString([]byte(doc), "s"); !ok || string(s) != "café 😀" {
		t.Errorf("GetString surrogates = %q %v", s, ok)
	}
	if n, ok := GetInt([]byte(doc), "b", "d", "0"); !ok || n != 10 {
		t.Errorf("GetInt = %d %v", n, ok)
	}
	if b, ok := GetBool([]byte(doc), "b", "d", "1", "e"); !ok || !b {
		t.Errorf("GetBool = %v %v", b, ok)
	}
}

func TestSetAndDelete(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		path  []string
		value string
		want  string
	}{
		{"replace", `{"a":1,"b":2}`, []string{"a"}, `"x"`, `{"a":"x","b":2}`},
		{"replace nested", `{"a":{"b":[1,2]}}`, []string{"a", "b", "1"}, `3`, `{"a":{"b":[1,3]}}`},
		{"add", `{"a":1}`, []string{"b"}, `true`, `{"a":1,"b":true}`},
		{"add to empty", `{ }`, []string{"b"}, `1`, `{ "b":1}`},
		{"add path", `{"a":{}}`, []string{"a", "x", "y"}, `1`, `{"a":{"x":{"y":1}}}`},
		{"root", `{}`, nil, `[]`, `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Set(nil, []byte(tc.in), []byte(tc.value), tc.path...)
			if err != nil || string(got) != tc.want {
				t.Fatalf("Set = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
	if _, err := Set(nil, []byte(`{"a":1}`), []byte(`1`), "a", "b"); err != ErrNotObject {
		t.Errorf("set through a scalar: %v", err)
	}
	for _, tc := range []struct{ in, key, want string }{
		{`{"a":1,"b":2,"c":3}`, "b", `{"a":1,"c":3}`},
		{`{"a":1,"b":2}`, "b", `{"a":1}`},
		{`{"a":1,"b":2}`, "a", `{"b":2}`},
		{`{"a":1}`, "a", `{}`},
		{`{"a":1}`, "z", `{"a":1}`},
	} {
		got, err := Delete(nil, []byte(tc.in), tc.key)
		if err != nil || string(got) != tc.want {
			t.Errorf("Delete(%s, %s) = %s, %v; want %s", tc.in, tc.key, got, err, tc.want)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "\n\t\x01", "é😀", "bad\xffutf8"} {
		var v string
		if err := json.Unmarshal(AppendString(nil, []byte(s)), &v); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := string(bytes.ToValidUTF8([]byte(s), []byte("\ufffd")))
		if v != want {
			t.Errorf("round trip %q = %q", s, v)
		}
	}
}

// FuzzSet checks, on documents encoding/json accepts, that Get finds what
// encoding/json finds, and that Set yields valid JSON holding the value.
func FuzzSet(f *testing.F) {
	f.Add([]byte(doc), "b", "c")
	f.Add([]byte(`{"a":[1,2,{"b":3}]}`), "a", "2")
	f.Add([]byte(`[]`), "0", "")
	f.Fuzz(func(t *testing.T, in []byte, k1, k2 string) {
		path := []string{k1}
		if k2 != "" {
			path = append(path, k2)
		}
		got, ok := Get(in, path...)
		if !json.Valid(in) {
			Set(nil, in, []byte("1"), path...) // must not panic
			Delete(nil, in, path...)
			return
		}
		if hasDuplicateKeys(in) {
			return // Get finds the first, encoding/json keeps the last
		}
		var tree any
		json.Unmarshal(in, &tree)
		want, wantOK := lookup(tree, path)
		if ok != wantOK {
			t.Fatalf("Get(%v) found=%v, encoding/json found=%v", path, ok, wantOK)
		}
		if ok {
			var v any
			if err := json.Unmarshal(got, &v); err != nil || !reflect.DeepEqual(v, want) {
				t.Fatalf("Get(%v) = %s, want %v", path, got, want)
			}
		}
		out, err := Set(nil, in, []byte(`"set"`), path...)
		if err == nil {
			if !json.Valid(out) {
				t.Fatalf("Set produced invalid JSON: %s", out)
			}
			if v, ok := GetString(out, path...); (!ok || string(v) != "set") && utf8.ValidString(k1) && utf8.ValidString(k2) {
				t.Fatalf("after Set, Get = %s %v in %s", v, ok, out)
			}
		}
		if out, err := Delete(nil, in, path...); err == nil && !json.Valid(out) {
			t.Fatalf("Delete produced invalid JSON: %s", out)
		}
	})
}

// hasDuplicateKeys reports whether any object of the valid document in
// repeats a key.
func hasDuplicateKeys(in []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(in))
	type frame struct {
		keys   map[string]bool
		object bool
		expect bool // next string token is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := len(stack) - 1
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top >= 0 && stack[top].object {
					stack[top].expect = true
				}
				stack = append(stack, frame{keys: map[string]bool{}, object: true, expect: true})
				continue
			case '[':
				if top >= 0 && stack[top].object {
					stack[top].expect = true
				}
				stack = append(stack, frame{})
				continue
			default:
				stack = stack[:top]
				continue
			}
		case string:
			if top >= 0 && stack[top].object && stack[top].expect {
				if stack[top].keys[v] {
					return true
				}
				stack[top].keys[v] = true
				stack[top].expect = false
				continue
			}
		}
		if top >= 0 && stack[top].object {
			stack[top].expect = true
		}
	}
}

// lookup follows path the way Get does.
func lookup(v any, path []string) (any, bool) {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i := 0
			for _, c := range k {
				if c < '0' || c > '9' || i > 1e6 {
					return nil, false
				}
				i = i*10 + int(c-'0')
			}
			if k == "" || i >= len(x) || (len(k) > 1 && k[0] == '0') {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func TestElements(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{`[]`, nil, nil},
		{` [ ] `, nil, nil},
		{`[1, "a,]", {"b":[2,3]}, [4], null, true]`, []string{`1`, `"a,]"`, `{"b":[2,3]}`, `[4]`, `null`, `true`}, nil},
		{`{"a":1}`, nil, ErrNotArray},
		{`"[1]"`, nil, ErrNotArray},
		{``, nil, ErrNotArray},
		{`[1 2]`, []string{`1`}, ErrSyntax},
		{`[1,`, []string{`1`}, ErrSyntax},
		{`["x`, nil, ErrSyntax},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var got []string
			err := Elements([]byte(tc.in), func(i int, e []byte) bool {
				if i != len(got) {
					t.Errorf("index %d, want %d", i, len(got))
				}
				got = append(got, string(e))
				return true
			})
			if err != tc.err || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Elements = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
	n := 0
	Elements([]byte(`[1,2,3]`), func(int, []byte) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("fn returning false did not stop the walk: %d calls", n)
	}
}

// decodeAny decodes one JSON value, its numbers as their text: a number
// too large for a float64 (2e308) is still JSON, as encoding/json's
// RawMessage keeps it.
func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one value")
	}
	return v, nil
}

// FuzzElements checks Elements against encoding/json on valid arrays and
// that it never panics on anything else.
func FuzzElements(f *testing.F) {
	f.Add([]byte(`[1,"a",{"b":[2]},[3],null]`))
	f.Add([]byte(`[ "\"]" , -1.5e3 ]`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got [][]byte
		err := Elements(in, func(_ int, e []byte) bool {
			got = append(got, e)
			return true
		})
		var want []json.RawMessage
		if json.Unmarshal(in, &want) != nil || want == nil {
			return // not an array (null decodes to a nil slice)
		}
		if err != nil {
			t.Fatalf("Elements(%s): %v", in, err)
		}
		if len(got) != len(want) {
			t.Fatalf("Elements(%s): %d elements, encoding/json %d", in, len(got), len(want))
		}
		for i := range got {
			a, err := decodeAny(got[i])
			if err != nil {
				t.Fatalf("element %d %q is not JSON: %v", i, got[i], err)
			}
			b, _ := decodeAny(want[i])
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("element %d = %s, want %s", i, got[i], want[i])
			}
		}
	})
}

func TestMembers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{`{}`, nil, nil},
		{` { "a" : 1 , "b\"c":"x}", "d":{"e":[1,{}]}, "f":null,"g":-2.5e3 } `, []string{`a=1`, `b\"c="x}"`, `d={"e":[1,{}]}`, `f=null`, `g=-2.5e3`}, nil},
		{`[1]`, nil, ErrNotObject},
		{``, nil, ErrNotObject},
		{`{"a":1 "b":2}`, []string{`a=1`}, ErrSyntax},
		{`{"a":`, nil, ErrSyntax},
		{`{"a"}`, nil, ErrSyntax},
		{`{"a":1,`, []string{`a=1`}, ErrSyntax},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var got []string
			err := Members([]byte(tc.in), func(k, v []byte) bool {
				got = append(got, string(k)+"="+string(v))
				return true
			})
			if err != tc.err || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Members = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// FuzzMembers checks Members against encoding/json on valid objects.
func FuzzMembers(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x","c":{"d":[1,2]},"e":null}`))
	f.Add([]byte(`{"\u0061":true, "b" : [ ] }`))
	f.Add([]byte(`{"a":1`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var keys []string
		var vals [][]byte
		err := Members(in, func(k, v []byte) bool {
			keys = append(keys, string(k))
			vals = append(vals, v)
			return true
		})
		var want map[string]json.RawMessage
		if !utf8.Valid(in) || json.Unmarshal(in, &want) != nil || want == nil || hasDuplicateKeys(in) {
			return // encoding/json replaces invalid UTF-8 in keys
		}
		if err != nil {
			t.Fatalf("Members(%s): %v", in, err)
		}
		if len(keys) != len(want) {
			t.Fatalf("Members(%s): %d members, encoding/json %d", in, len(keys), len(want))
		}
		for i, k := range keys {
			u, ok := Unquote(nil, []byte(`"`+k+`"`))
			if !ok {
				t.Fatalf("key %q does not unquote", k)
			}
			a, err := decodeAny(vals[i])
			if err != nil {
				t.Fatalf("value %q of %q is not JSON: %v", vals[i], k, err)
			}
			b, _ := decodeAny(want[string(u)])
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("member %q = %s, want %s", u, vals[i], want[string(u)])
			}
		}
	})
}
