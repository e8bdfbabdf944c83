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
	strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
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
	tooDeep := strings.Count(in, "[") > 1000 && strings.Trim(in, "[]") == ""
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

func FuzzCompact(f *testing.F) {
	for _, c := range compactCases {
		f.Add(c)
	}
	f.Fuzz(checkCompact)
}
