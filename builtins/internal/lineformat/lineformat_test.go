package lineformat

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/message"
)

func TestAppend(t *testing.T) {
	pos := message.Position{Stream: "stdin", Offset: 42}
	at := time.Date(2026, 11, 25, 15, 0, 0, 123456789, time.UTC)
	cases := []struct {
		format Format
		line   string
		want   string // "" means a decode error
		err    error
	}{
		{Auto, `{"specversion":"1.0","id":"x","source":"s","type":"t"}`, `{"specversion":"1.0","id":"x","source":"s","type":"t"}`, nil},
		{Auto, `{"a": 1}`, `{"specversion":"1.0","id":"stdin-0-42","source":"src","type":"typ","time":"2026-11-25T15:00:00.123Z","datacontenttype":"application/json","data":{"a": 1}}`, nil},
		{Auto, `  [1,2] `, `{"specversion":"1.0","id":"stdin-0-42","source":"src","type":"typ","time":"2026-11-25T15:00:00.123Z","datacontenttype":"application/json","data":[1,2]}`, nil},
		{Auto, "plain \"text\"\r", `{"specversion":"1.0","id":"stdin-0-42","source":"src","type":"typ","time":"2026-11-25T15:00:00.123Z","datacontenttype":"text/plain","data":"plain \"text\""}`, nil},
		{Auto, `{"a": 1`, `{"specversion":"1.0","id":"stdin-0-42","source":"src","type":"typ","time":"2026-11-25T15:00:00.123Z","datacontenttype":"text/plain","data":"{\"a\": 1"}`, nil},
		{JSON, `{"a": 1`, ``, ErrDecode},
		{JSON, `7`, `{"specversion":"1.0","id":"stdin-0-42","source":"src","type":"typ","time":"2026-11-25T15:00:00.123Z","datacontenttype":"application/json","data":7}`, nil},
		{CloudEvents, `{"a": 1}`, ``, ErrDecode},
		{CloudEvents, `{"specversion":"1.0","id":"x","source":"s"}`, ``, ErrDecode},
		{CloudEvents, `{"specversion":"1.0","id":1,"source":"s","type":"t"}`, ``, ErrDecode},
		{CloudEvents, `{"specversion":"1.0","id":"x","source":"s","type":"t","data":{}}`, `{"specversion":"1.0","id":"x","source":"s","type":"t","data":{}}`, nil},
		{Auto, string(make([]byte, 2000)), ``, ErrTooLarge},
	}
	for _, c := range cases {
		w := Wrapper{Format: c.format, Source: "src", Type: "typ", MaxEvent: 1024}
		w.SetTime(at)
		got, err := w.Append([]byte("keep:"), []byte(c.line), pos)
		if c.err != nil {
			if !errors.Is(err, c.err) || string(got) != "keep:" {
				t.Errorf("%s %q: got %q, %v; want error %v", c.format, c.line, got, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != "keep:"+c.want {
			t.Errorf("%s %q:\n got %s (%v)\nwant keep:%s", c.format, c.line, got, err, c.want)
		}
		if !json.Valid(got[5:]) {
			t.Errorf("%s %q: output is not JSON: %s", c.format, c.line, got)
		}
	}
}

// FuzzAppend: whatever the line, every format and UTF-8 policy gives
// either an error or one JSON object in valid UTF-8 (RFC 8259 §8.1: JSON
// exchanged between systems is UTF-8).
func FuzzAppend(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0"}`), uint8(0))
	f.Add([]byte(`{"a":"\u00e9"}`), uint8(1))
	f.Add([]byte("text\x00\x1f\"\\"), uint8(2))
	f.Add([]byte("caf\xe9 latin-1"), uint8(0))
	f.Add([]byte("{\"a\":\"\xff\xfe\"}"), uint8(1))
	f.Add([]byte("{\"specversion\":\"1.0\",\"id\":\"\xc3\",\"source\":\"s\",\"type\":\"t\"}"), uint8(5))
	f.Fuzz(func(t *testing.T, line []byte, fm uint8) {
		format := []Format{Auto, JSON, CloudEvents}[int(fm)%3]
		policy := []UTF8Policy{Replace, Reject}[int(fm/3)%2]
		w := Wrapper{Format: format, InvalidUTF8: policy, Source: "s\"rc", Type: "t"}
		out, err := w.Append(nil, line, message.Position{Stream: `C:\path "x"`, Offset: 1})
		if err != nil {
			if policy == Reject && !utf8.Valid(line) && !errors.Is(err, ErrDecode) {
				t.Fatalf("invalid UTF-8 under reject: %v, want a decode error", err)
			}
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("format %s, %s: line %q gave %q: not JSON in valid UTF-8", format, policy, line, out)
		}
		if policy == Reject && !utf8.Valid(line) {
			t.Fatalf("reject passed invalid UTF-8 %q", line)
		}
	})
}

func BenchmarkAppendWrap(b *testing.B) {
	line := []byte(`{"order_id":"o-000042","region":"eu-west-1","amount":129.5,"currency":"EUR","customer":{"id":"c-17","tier":"gold"},"items":3,"note":"generated order for the benchmark workload"}`)
	w := Wrapper{Format: Auto, Source: "stdin", Type: "sluice.line"}
	var dst []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		dst, _ = w.Append(dst[:0], line, message.Position{Stream: "stdin", Offset: 1234})
	}
}

// TestAppendLimitsTheBuiltEvent: MaxBuilt bounds the event built: a line
// under it whose wrapped, escaped event is over it is refused with both
// sizes, and dst is left as it was.
func TestAppendLimitsTheBuiltEvent(t *testing.T) {
	w := Wrapper{Source: "s", Type: "t", MaxEvent: 300, MaxBuilt: 300}
	dst := []byte("kept")
	line := bytes.Repeat([]byte{1}, 40) // 40 bytes; 240 escaped, plus the envelope
	out, err := w.Append(dst, line, message.Position{Stream: "x", Offset: 1})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "its 40 bytes") || !strings.Contains(err.Error(), "limit is 300") {
		t.Fatalf("err = %v, want ErrTooLarge naming both sizes", err)
	}
	if string(out) != "kept" {
		t.Fatalf("dst = %q, want it unchanged", out)
	}
	w.MaxBuilt = 400
	if out, err = w.Append(dst, line, message.Position{Stream: "x", Offset: 1}); err != nil || len(out)-len(dst) > 400 {
		t.Fatalf("under the limit: %d bytes, %v", len(out)-len(dst), err)
	}
}

// TestAppendLimitsAPassedOnCloudEvent: a CloudEvent line is passed on as
// it is, but it too can come out larger than the line: each byte that is
// not UTF-8 becomes U+FFFD, three bytes. Such an event over MaxBuilt (or a
// line between a source's max_event_size and the task's smaller limit) was
// passed on and dead-lettered by the engine, with neither the line's
// position nor its size; it is refused here like a wrapped one.
func TestAppendLimitsAPassedOnCloudEvent(t *testing.T) {
	line := []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","data":"` + strings.Repeat("\xe9", 60) + `"}`)
	for _, f := range []Format{Auto, JSON, CloudEvents} {
		w := Wrapper{Format: f, Source: "s", Type: "t", MaxEvent: 200, MaxBuilt: 200}
		out, err := w.Append([]byte("kept"), line, message.Position{Stream: "x", Offset: 1})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit is 200") || !strings.Contains(err.Error(), "its 124 bytes") || string(out) != "kept" {
			t.Errorf("%s: a %d-byte line whose event is %d bytes: %v, want ErrTooLarge naming the limit, dst unchanged", f, len(line), len(out)-4, err)
		}
		w.MaxBuilt = 400
		if out, err := w.Append(nil, line, message.Position{Stream: "x", Offset: 1}); err != nil || !utf8.Valid(out) || !json.Valid(out) {
			t.Errorf("%s: under the limit: %q, %v", f, out, err)
		}
	}
}

// A UTF-8 byte order mark at the start of a stream (Windows tools write one
// at the start of a file) is not part of the first line: the line is JSON
// as in the file without it. Elsewhere it is a character of the line.
func TestAppendDropsAByteOrderMarkAtTheStartOfAStream(t *testing.T) {
	line := []byte("\ufeff{\"n\":1}")
	for _, f := range []Format{Auto, JSON} {
		w := Wrapper{Format: f, Source: "s", Type: "t"}
		out, err := w.Append(nil, line, message.Position{Stream: "x", Offset: 0})
		if err != nil || !strings.Contains(string(out), `"datacontenttype":"application/json","data":{"n":1}`) {
			t.Errorf("%s: the first line %q gave %s, %v; want its JSON", f, line, out, err)
		}
	}
	w := Wrapper{Format: Auto, Source: "s", Type: "t"}
	out, err := w.Append(nil, line, message.Position{Stream: "x", Offset: 42})
	if err != nil || !strings.Contains(string(out), `"datacontenttype":"text/plain"`) {
		t.Errorf("a later line %q gave %s, %v; want text (the mark is a character there)", line, out, err)
	}
}
