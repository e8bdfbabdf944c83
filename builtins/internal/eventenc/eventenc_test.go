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
