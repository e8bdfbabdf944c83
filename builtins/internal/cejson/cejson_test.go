package cejson

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendTextKeepsJSONValid(t *testing.T) {
	for _, in := range []string{"plain", `q"uote\back`, "tab\tnl\n", "héllo", "bad\xffutf8", "\x00ctl"} {
		out := AppendQuoted(nil, []byte(in))
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("%q -> %s: %v", in, out, err)
		}
		if in != "bad\xffutf8" && s != in {
			t.Fatalf("%q round-tripped to %q", in, s)
		}
		if in == "bad\xffutf8" && s != "bad\ufffdutf8" {
			t.Fatalf("invalid UTF-8 became %q", s)
		}
	}
}

func TestJSONValue(t *testing.T) {
	for in, want := range map[string]string{` {"a":1} `: `{"a":1}`, "42\n": "42", `"s"`: `"s"`} {
		v, ok := JSONValue([]byte(in))
		if !ok || string(v) != want {
			t.Fatalf("%q: %q %v", in, v, ok)
		}
	}
	for _, in := range []string{"", "  ", "abc", `{"a":1} x`, "1 2", "\"\xff\""} {
		if _, ok := JSONValue([]byte(in)); ok {
			t.Fatalf("%q accepted as JSON", in)
		}
	}
}

func TestClock(t *testing.T) {
	var c Clock
	for _, ms := range []int64{0, 1_700_000_000_123, 1_700_000_000_999, 1_700_000_001_005, -1} {
		got := string(c.AppendMillis(nil, ms))
		want := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
		if got != want {
			t.Fatalf("%d: %s, want %s", ms, got, want)
		}
	}
}
