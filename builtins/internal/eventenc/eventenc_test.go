package eventenc

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendBody(t *testing.T) {
	for _, tc := range []struct {
		body, format, want string
		nonJSON            bool
	}{
		{` {"a":1} `, FormatJSON, `{"a":1}`, false},
		{`not json`, FormatJSON, `"not json"`, true},
		{"bad \xff", FormatText, `"bad \ufffd"`, false},
		{"\x00\x01", FormatBase64, `"AAE="`, false},
		{`{"a":1}`, FormatText, `"{\"a\":1}"`, false},
	} {
		got, non := AppendBody(nil, []byte(tc.body), tc.format)
		if string(got) != tc.want || non != tc.nonJSON || !json.Valid(got) {
			t.Errorf("%q as %s: %s %v", tc.body, tc.format, got, non)
		}
	}
}

func TestClock(t *testing.T) {
	var c Clock
	ts := time.Date(2024, 5, 1, 12, 0, 0, 5e6, time.UTC)
	if got := string(c.AppendTime(nil, ts)); got != "2024-05-01T12:00:00.005Z" {
		t.Fatal(got)
	}
	if got := string(c.AppendMillis(nil, ts.UnixMilli()+999)); got != "2024-05-01T12:00:01.004Z" {
		t.Fatal(got)
	}
	if got := string(c.AppendMillis(nil, -1)); got != "1969-12-31T23:59:59.999Z" {
		t.Fatal(got)
	}
}
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
