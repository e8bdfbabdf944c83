// Package eventenc holds the append-only JSON helpers that message-broker
// sources share to wrap a message in a CloudEvent without encoding/json:
// string escaping that keeps invalid UTF-8 valid JSON, a body rendered as
// JSON, text or Base64, and RFC 3339 timestamps formatted once per second.
package eventenc

import (
	"encoding/base64"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Body formats: how a source places a message body in data.body.
const (
	FormatJSON   = "json"
	FormatText   = "text"
	FormatBase64 = "base64"
)

// DataContentType is the `datacontenttype` of the events these sources emit:
// data is always a JSON object.
const DataContentType = "application/json; charset=utf-8"

// AppendText appends s escaped for the inside of a JSON string. Invalid
// UTF-8 becomes U+FFFD, as encoding/json does, so the event stays valid JSON.
func AppendText(dst, s []byte) []byte {
	// Fast path: printable ASCII without quotes or backslashes, the usual
	// topic, queue or header, is copied in one pass.
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return append(dst, s...)
	}
	if utf8.Valid(s[i:]) {
		return jsonscan.AppendEscaped(dst, s)
	}
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
			s = s[1:]
			continue
		}
		dst = jsonscan.AppendEscaped(dst, s[:size])
		s = s[size:]
	}
	return dst
}

// AppendString appends s as a JSON string, quotes included.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendText(dst, []byte(s))
	return append(dst, '"')
}

// AppendQuoted appends s as a JSON string, quotes included.
func AppendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = AppendText(dst, s)
	return append(dst, '"')
}

// JSONValue returns v without surrounding whitespace when it is one valid
// JSON value in valid UTF-8.
func JSONValue(v []byte) ([]byte, bool) {
	i := jsonscan.SkipSpace(v, 0)
	j := len(v)
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t' || v[j-1] == '\n' || v[j-1] == '\r') {
		j--
	}
	if i == j || !utf8.Valid(v[i:j]) || jsonscan.ValidAt(v, i) != j {
		return nil, false
	}
	return v[i:j], true
}

// AppendBody appends body as a JSON value in format: json (the value
// itself; a body that is not JSON becomes a string and nonJSON is true),
// text (a string) or base64 (a Base64 string).
func AppendBody(dst, body []byte, format string) (out []byte, nonJSON bool) {
	switch format {
	case FormatBase64:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, body)
		return append(dst, '"'), false
	case FormatJSON:
		if v, ok := JSONValue(body); ok {
			return append(dst, v...), false
		}
		nonJSON = true
	}
	return AppendQuoted(dst, body), nonJSON
}

// BodySize estimates the room body takes in format, to size buffers once.
func BodySize(body []byte, format string) int {
	if format == FormatBase64 {
		return len(body)*4/3 + 6
	}
	return len(body) + 2
}

// Clock formats timestamps as RFC 3339 UTC with milliseconds. Messages of a
// batch carry close timestamps, so the text up to the second is kept and
// only the milliseconds are formatted per message. Not safe for concurrent
// use.
type Clock struct {
	lastSec int64
	secText []byte
	// now is the time used for a timestamp RFC 3339 cannot write; nil:
	// time.Now (tests set it).
	now func() time.Time
}

// The range of times RFC 3339 can write, whose years have four digits:
// 0000-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z, in Unix
// milliseconds.
const (
	minMillis = -62167219200000
	maxMillis = 253402300799999
)

// AppendMillis appends the time ms (Unix milliseconds). A time outside the
// years 0000 to 9999 (a producer's timestamp: an AMQP timestamp property, an
// explicit Redis stream id, a Kafka record time) has no RFC 3339 text, which
// CloudEvents requires for `time`: the time of the call, the time the
// source read the message, is written instead, as for a message that
// carries no timestamp. The producer's value stays in the event's data.
func (c *Clock) AppendMillis(dst []byte, ms int64) []byte {
	if ms < minMillis || ms > maxMillis {
		ms = c.nowMillis()
	}
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	if c.secText == nil || sec != c.lastSec {
		c.secText = time.Unix(sec, 0).UTC().AppendFormat(c.secText[:0], "2006-01-02T15:04:05.")
		c.lastSec = sec
	}
	dst = append(dst, c.secText...)
	return append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
}

// AppendTime appends t as AppendMillis does. The range is checked on t
// itself: UnixMilli is undefined for a time 292 million years away, which
// an AMQP timestamp (any 64-bit count of seconds) can be.
func (c *Clock) AppendTime(dst []byte, t time.Time) []byte {
	if t.Before(minTime) || t.After(maxTime) {
		return c.AppendMillis(dst, c.nowMillis())
	}
	return c.AppendMillis(dst, t.UnixMilli())
}

var minTime, maxTime = time.UnixMilli(minMillis), time.UnixMilli(maxMillis)

func (c *Clock) nowMillis() int64 {
	if c.now != nil {
		return c.now().UnixMilli()
	}
	return time.Now().UnixMilli()
}

// AppendGrouped appends, as the members of a JSON object (without the
// braces), n values named by name(i): a name's one value as itself, a
// name's several values as an array in their order, the names in the order
// of their first value; appendValue appends value i. It takes linear time
// (a map), for the connectors' many-values case (headers, stream fields)
// where a scan per name was quadratic.
func AppendGrouped(dst []byte, n int, name func(i int) string, appendValue func(dst []byte, i int) []byte) []byte {
	next := make([]int, n) // the next value of the same name, or -1
	last := make(map[string]int, n)
	firsts := make([]int, 0, n)
	for i := range n {
		next[i] = -1
		k := name(i)
		if p, ok := last[k]; ok {
			next[p] = i
		} else {
			firsts = append(firsts, i)
		}
		last[k] = i
	}
	for m, i := range firsts {
		if m > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, name(i))
		dst = append(dst, ':')
		if next[i] < 0 {
			dst = appendValue(dst, i)
			continue
		}
		dst = append(dst, '[')
		for j := i; j >= 0; j = next[j] {
			if j != i {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, j)
		}
		dst = append(dst, ']')
	}
	return dst
}
