package cdc

import (
	"encoding/json"
	"testing"
)

// FuzzValues checks that every Append function that takes database text
// writes valid JSON whatever the bytes, and that a whole event built from
// them is valid too.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"", "1", "-0.5e10", "NaN", `{"a":1}`, " [1, 2] ", "\xff\xfe", "a\"b\\c\x01", "{", "1."} {
		f.Add([]byte(s))
	}
	tbl := NewTable("d", "s", "t\"x", []Column{{Name: "a"}, {Name: "b\n"}, {Name: "c"}, {Name: "d"}, {Name: "e"}}, []int{1})
	e := NewEncoder(Options{Connector: "c", Source: "s\x00", Type: "t"})
	f.Fuzz(func(t *testing.T, in []byte) {
		for i, out := range [][]byte{AppendString(nil, in), AppendJSON(nil, in), AppendNumberText(nil, in),
			AppendDecimal(nil, in, true), AppendDecimal(nil, in, false), AppendBytes(nil, in)} {
			if !json.Valid(out) {
				t.Fatalf("appender %d: %q gave invalid JSON %q", i, in, out)
			}
		}
		dst := e.Begin(nil, tbl, Update, in, int64(len(in))*1e9)
		dst = e.BeginImage(dst, Before)
		dst = e.Column(dst, 1)
		dst = AppendJSON(dst, in)
		dst = e.EndImage(dst)
		dst = e.BeginImage(dst, After)
		dst = e.Column(dst, 0)
		dst = AppendString(dst, in)
		dst = e.Column(dst, 1)
		dst = AppendNumberText(dst, in)
		dst = e.Column(dst, 2)
		dst = AppendBytes(dst, in)
		dst = e.EndImage(dst)
		dst = e.BeginSource(dst, false)
		dst = AppendMember(dst, string(in))
		dst = AppendString(dst, in)
		dst, key := e.End(dst)
		if !json.Valid(dst) || !json.Valid(key) {
			t.Fatalf("invalid event %q (key %q)", dst, key)
		}
	})
}
