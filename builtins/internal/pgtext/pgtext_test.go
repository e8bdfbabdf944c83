package pgtext

import (
	"encoding/json"
	"testing"
)

func TestArraysAndTimestamps(t *testing.T) {
	c := &Converter{}
	cases := []struct {
		ct   ColType
		in   string
		want string
	}{
		{builtinTypes[1007], `{1,NULL,3}`, `[1,null,3]`},
		{builtinTypes[1007], `[0:1]={1,2}`, `[1,2]`},
		{builtinTypes[1009], `{"a b","c\"d\\e",null,NULLX}`, `["a b","c\"d\\e",null,"NULLX"]`},
		{builtinTypes[1007], `{{1,2},{3,4}}`, `[[1,2],[3,4]]`},
		{builtinTypes[1007], `{}`, `[]`},
		// box[]: elements separated by box's typdelim, ';'.
		{ColType{kind: kArray, elem: kString, delim: ';', name: "box[]"}, `{(1,1),(0,0);"(2,2),(1,1)";NULL}`, `["(1,1),(0,0)","(2,2),(1,1)",null]`},
		{ColType{kind: kArray, elem: kString, delim: ';', name: "box[]"}, `{{(1,1),(0,0)};{(3,3),(2,2)}}`, `[["(1,1),(0,0)"],["(3,3),(2,2)"]]`},
		{ColType{kind: kArray, elem: kString, delim: ';', name: "box[]"}, `{(1,1),(0,0),(2,2),(1,1)}`, `["(1,1),(0,0),(2,2),(1,1)"]`},
		{builtinTypes[1007], `{1,2`, `"{1,2"`},
		{builtinTypes[1001], `{"\\x00ff"}`, `["AP8="]`},
		{builtinTypes[3807], `{"{\"a\": 1}"}`, `[{"a":1}]`},
		{builtinTypes[1184], `2026-01-02 03:04:05.123456+00`, `"2026-01-02T03:04:05.123456Z"`},
		{builtinTypes[1184], `2026-01-02 03:04:05+05:30`, `"2026-01-02T03:04:05+05:30"`},
		{builtinTypes[1184], `2026-01-02 03:04:05-08`, `"2026-01-02T03:04:05-08:00"`},
		{builtinTypes[1184], `0044-03-15 00:00:00+00 BC`, `"0044-03-15 00:00:00+00 BC"`},
		{builtinTypes[1184], `-infinity`, `"-infinity"`},
		{builtinTypes[1114], `2026-01-02 03:04:05`, `"2026-01-02T03:04:05Z"`},
		{builtinTypes[16], `t`, `true`},
		{builtinTypes[16], `f`, `false`},
		{builtinTypes[17], `\x`, `""`},
		{builtinTypes[17], `\xzz`, `"\\xzz"`},
		{builtinTypes[1700], `1.50`, `"1.50"`},
		{builtinTypes[701], `-Infinity`, `"-Infinity"`},
	}
	for _, tc := range cases {
		got := string(c.AppendValue(nil, tc.ct, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("%s %q: got %s, want %s", tc.ct.Name(), tc.in, got, tc.want)
		}
	}
	c.DecimalAsNumber = true
	if got := string(c.AppendValue(nil, builtinTypes[1700], []byte("1.50"))); got != "1.50" {
		t.Fatal(got)
	}
}

// FuzzAppendValue checks that any text, of any type, becomes valid JSON.
func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{`{1,NULL,3}`, `{{"a",b},{"c\"",NULL}}`, `[1:2]={1,2}`, `2026-01-02 03:04:05.1+05:30`, `\x00ff`, `{"\\x41"}`, `{`, `t`} {
		f.Add(uint32(1007), []byte(s))
	}
	c := &Converter{}
	f.Fuzz(func(t *testing.T, oid uint32, in []byte) {
		ct, ok := builtinTypes[oid%4000]
		if !ok {
			ct = builtinTypes[1009]
		}
		out := c.AppendValue(nil, ct, in)
		if !json.Valid(out) {
			t.Fatalf("%s %q: invalid JSON %q", ct.Name(), in, out)
		}
	})
}
