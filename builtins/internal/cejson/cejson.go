// Package cejson holds the append-only helpers the message-broker sources
// (NATS, Redis) use to build their CloudEvents without encoding/json: JSON
// string escaping that keeps invalid UTF-8 valid JSON, recognising a value
// that is already JSON, and RFC 3339 timestamps with milliseconds.
package cejson

import (
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// DataContentType is the `datacontenttype` of the events these sources
// emit: data is always a JSON object.
const DataContentType = "application/json; charset=utf-8"

// Value formats a source offers for message bodies.
const (
	FormatJSON   = "json"
	FormatText   = "text"
	FormatBase64 = "base64"
)

// AppendText appends s escaped for the inside of a JSON string. Invalid
// UTF-8 becomes U+FFFD, as encoding/json does, so the event stays valid JSON.
func AppendText(dst, s []byte) []byte {
	// Fast path: printable ASCII without quotes or backslashes, the usual
	// subject, key or header, is copied in one pass.
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

// AppendString appends s as a quoted JSON string (see AppendText).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendText(dst, []byte(s))
	return append(dst, '"')
}

// AppendQuoted appends s as a quoted JSON string (see AppendText).
func AppendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = AppendText(dst, s)
	return append(dst, '"')
}

// JSONValue returns v without surrounding whitespace when it is exactly one
// valid JSON value in valid UTF-8.
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

// Clock formats timestamps as RFC 3339 UTC with milliseconds. Messages of
// one batch carry close timestamps, so the text of the last second is kept
// and only the milliseconds are formatted per message. Not safe for
// concurrent use.
type Clock struct {
	lastSec int64
	secText []byte
}

// AppendMillis appends ms (Unix milliseconds) as "2006-01-02T15:04:05.000Z".
func (c *Clock) AppendMillis(dst []byte, ms int64) []byte {
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
