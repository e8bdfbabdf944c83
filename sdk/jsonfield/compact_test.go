package jsonfield

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var compactCases = []string{
	`{}`, ` [ ] `, `{"a" : [1, 2.5e-3, -0, true, false, null, "x\"y\\u00e9\n"], "b":{ }}`, `"\ud83d\ude00"`,
	"\t123\r\n", `-1.0E+10`, `0.5`, `[[[[]]]]`, `{"é":"é"}`, "\"\xff\"",
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nulll`,
	`"unterminated`, "\"ctl\x01\"", `"bad \x escape"`, `"\u12"`, `[1 2]`, `{"a":1}{}`, `1 2`, `NaN`,
	strings.Repeat("[", 1001) + strings.Repeat("]", 1001), strings.Repeat("[", 1001) + "1" + strings.Repeat("]", 1001),
	`{"a":` + strings.Repeat(`[{"b":"[]"},`, 1001) + "0" + strings.Repeat("]", 1001) + "}",
}

// TestCompactMatchesEncodingJSON: Valid and Compact agree with
// encoding/json.
func TestCompactMatchesEncodingJSON(t *testing.T) {
	for _, in := range compactCases {
		checkCompact(t, in)
	}
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	if !Valid([]byte(deep)) {
		t.Error("1000 levels of nesting are valid")
	}
}

func checkCompact(t *testing.T, in string) {
	t.Helper()
	var want bytes.Buffer
	werr := json.Compact(&want, []byte(in))
	// Compact refuses what nests more than 1000 deep, encoding/json
	// accepts it (up to 10000): any such value, not only bare brackets.
	tooDeep := werr == nil && nesting(in) > 1000
	got, err := Compact([]byte("prefix:"), []byte(in))
	switch {
	case tooDeep:
		if err == nil {
			t.Errorf("%.20q...: more than 1000 levels accepted", in)
		}
	case (err == nil) != (werr == nil):
		t.Errorf("%q: Compact error %v, encoding/json %v", in, err, werr)
	case err == nil && string(got) != "prefix:"+want.String():
		t.Errorf("%q: Compact %q, want %q", in, got, want.String())
	case err != nil && string(got) != "prefix:":
		t.Errorf("%q: Compact changed dst on error: %q", in, got)
	}
	if !tooDeep && Valid([]byte(in)) != json.Valid([]byte(in)) {
		t.Errorf("%q: Valid %v, encoding/json %v", in, Valid([]byte(in)), json.Valid([]byte(in)))
	}
}

// nesting is the deepest nesting of arrays and objects in in, brackets
// inside strings not counted.
func nesting(in string) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func FuzzCompact(f *testing.F) {
	for _, c := range compactCases {
		f.Add(c)
	}
	f.Fuzz(checkCompact)
}
