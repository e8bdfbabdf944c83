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

// TestClockOutOfRangeYears: AppendMillis writes the CloudEvents `time` of
// RabbitMQ, Redis, NATS and Kafka events from a timestamp the producer
// chose (an AMQP timestamp property, an explicit XADD id such as
// 253402300800000-0). Past year 9999 it wrote a 5+ digit year, which is not
// RFC 3339 (CloudEvents requires RFC 3339 for `time`; Go's own
// time.Time.MarshalJSON refuses such years). Such a time is now replaced by
// the time of the call, the time the source read the message; the first
// and last milliseconds of the range are kept.
func TestClockOutOfRangeYears(t *testing.T) {
	var c Clock
	for _, ms := range []int64{253402300800000, 1<<63 - 1, -62167219200001, -1 << 63} {
		got := string(c.AppendMillis(nil, ms))
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("AppendMillis(%d) = %q, not RFC 3339: %v", ms, got, err)
		}
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 42e6, time.UTC)
	c = Clock{now: func() time.Time { return now }}
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{253402300799999, "9999-12-31T23:59:59.999Z"},
		{253402300800000, "2026-12-07T10:00:00.042Z"},
		{-62167219200000, "0000-01-01T00:00:00.000Z"},
		{-62167219200001, "2026-12-07T10:00:00.042Z"},
		{1<<63 - 1, "2026-12-07T10:00:00.042Z"},
	} {
		if got := string(c.AppendMillis(nil, tc.ms)); got != tc.want {
			t.Errorf("AppendMillis(%d) = %q, want %q", tc.ms, got, tc.want)
		}
	}
	// An AMQP timestamp is any 64-bit count of seconds: UnixMilli overflows
	// for the largest, so AppendTime checks the time itself.
	for _, ts := range []time.Time{time.Unix(1<<62, 0), time.Unix(-1<<62, 0), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got := string(c.AppendTime(nil, ts)); got != "2026-12-07T10:00:00.042Z" {
			t.Errorf("AppendTime(%v) = %q, want the time of reading", ts, got)
		}
	}
	if got := string(c.AppendTime(nil, time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC))); got != "9999-12-31T23:59:59.999Z" {
		t.Errorf("AppendTime(the last millisecond of 9999) = %q", got)
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

func TestAppendGrouped(t *testing.T) {
	kv := [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", "4"}, {"a", "5"}, {"b", "6"}}
	got := AppendGrouped([]byte("{"), len(kv), func(i int) string { return kv[i][0] },
		func(dst []byte, i int) []byte { return AppendString(dst, kv[i][1]) })
	got = append(got, '}')
	if want := `{"a":["1","3","5"],"b":["2","6"],"c":"4"}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := AppendGrouped(nil, 0, nil, nil); len(got) != 0 {
		t.Fatalf("no values: got %q", got)
	}
}
