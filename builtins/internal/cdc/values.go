package cdc

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// The Append functions write one column value as JSON, typed by the
// column's type (docs/connectors/cdc.md, "Column values"). They never fail:
// a value that cannot take its type's JSON form (a NaN float, text that is
// not a number, invalid JSON) is written as a JSON string holding the
// database's text, so that nothing is lost or invented.

// AppendNull appends SQL NULL.
func AppendNull(dst []byte) []byte { return append(dst, "null"...) }

// AppendBool appends a boolean.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// AppendInt appends a signed integer as a JSON number.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// AppendUint appends an unsigned integer as a JSON number.
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// AppendFloat appends a float of bitSize 32 or 64 as a JSON number, in the
// shortest form that reads back as the same value. NaN and the infinities,
// which JSON numbers cannot hold, are the strings "NaN", "Infinity" and
// "-Infinity" (the PostgreSQL spellings).
func AppendFloat(dst []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	// As encoding/json: plain notation for human-sized magnitudes,
	// exponent notation outside.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bitSize == 64 && (abs < 1e-6 || abs >= 1e21) || bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, bitSize)
}

// AppendNumberText appends text, a number as the database prints it
// (integer, float or decimal), as a JSON number when it is one, and as a
// JSON string otherwise (NaN, Infinity, "1." forms JSON refuses).
func AppendNumberText(dst []byte, text []byte) []byte {
	if IsJSONNumber(text) {
		return append(dst, text...)
	}
	return AppendString(dst, text)
}

// AppendDecimal appends a numeric/decimal value from its text: a JSON
// string by default, so that no precision is lost to readers that parse
// numbers as binary floats; a JSON number when asNumber is set and the text
// is one.
func AppendDecimal(dst []byte, text []byte, asNumber bool) []byte {
	if asNumber {
		return AppendNumberText(dst, text)
	}
	return AppendString(dst, text)
}

// IsJSONNumber reports whether text is exactly one JSON number.
func IsJSONNumber(text []byte) bool {
	if len(text) == 0 || jsonscan.KindOf(text[0]) != jsonscan.Number {
		return false
	}
	return jsonscan.ValidAt(text, 0) == len(text)
}

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so the event stays valid JSON; binary columns use
// AppendBytes instead.
func AppendString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendText(dst, s)
	return append(dst, '"')
}

// AppendBytes appends binary data (bytea, blob, binary) as a base64 string
// (standard alphabet, padded).
func AppendBytes(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// AppendJSON embeds a json/jsonb value: compacted when it is valid JSON,
// a JSON string of its text otherwise.
func AppendJSON(dst []byte, raw []byte) []byte {
	i := jsonscan.SkipSpace(raw, 0)
	if i < len(raw) && utf8.Valid(raw) {
		if end := jsonscan.ValidAt(raw, i); end > 0 && jsonscan.SkipSpace(raw, end) == len(raw) {
			v := raw[i:end]
			if jsonscan.IsCompact(v) {
				return append(dst, v...)
			}
			return jsonscan.AppendCompact(dst, v)
		}
	}
	return AppendString(dst, raw)
}

// AppendTime appends t as an RFC 3339 string with as many fractional digits
// as it has (up to nanoseconds), in t's own location: UTC times end in Z.
func AppendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// AppendDate appends a calendar date as "YYYY-MM-DD" (RFC 3339 full-date).
// Years outside 0..9999 are written with their sign and digits as they
// are.
func AppendDate(dst []byte, year, month, day int) []byte {
	dst = append(dst, '"')
	dst = appendYear(dst, year)
	dst = append(dst, '-')
	dst = append2(dst, month)
	dst = append(dst, '-')
	dst = append2(dst, day)
	return append(dst, '"')
}

func appendYear(dst []byte, y int) []byte {
	if y >= 0 && y <= 9999 {
		return append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	}
	return strconv.AppendInt(dst, int64(y), 10)
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10%10), byte('0'+v%10))
}

// appendText appends s escaped for the inside of a JSON string. Invalid
// UTF-8 becomes \ufffd.
func appendText(dst, s []byte) []byte {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return append(dst, s...)
	}
	dst = append(dst, s[:i]...)
	s = s[i:]
	if utf8.Valid(s) {
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
