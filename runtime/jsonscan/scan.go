// Package jsonscan reads JSON without decoding it: it validates, skips
// values, walks objects and arrays and finds the value at a path, all on the
// raw bytes and without allocating. The hot path (line sources, the pattern
// matcher, templates) uses it so an event is never turned into map[string]any.
//
// Offsets are byte indexes into the input. A "span" [start, end) covers one
// JSON value exactly, without surrounding whitespace.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
)

// Kind is the type of a JSON value, known from its first byte.
type Kind uint8

const (
	Invalid Kind = iota
	Null
	False
	True
	Number
	String
	Object
	Array
)

var kindNames = [...]string{"invalid", "null", "false", "true", "number", "string", "object", "array"}

func (k Kind) String() string { return kindNames[k] }

// KindOf returns the kind of the value whose first byte is c.
func KindOf(c byte) Kind {
	switch c {
	case '"':
		return String
	case '{':
		return Object
	case '[':
		return Array
	case 't':
		return True
	case 'f':
		return False
	case 'n':
		return Null
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return Number
	}
	return Invalid
}

// ws marks the four JSON whitespace bytes.
var ws = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// SkipSpace returns the index of the first non-whitespace byte at or after i.
func SkipSpace(data []byte, i int) int {
	for i < len(data) && ws[data[i]] {
		i++
	}
	return i
}

// SWAR helpers: they flag, in the high bit of each byte of a little-endian
// word, the bytes that are '"', '\\' or (needsAttention) below 0x20. Only the
// lowest flagged byte is exact (a borrow can flag bytes above it), which is
// all the callers use.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func quoteOrBackslash(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b) & msb
}

func needsAttention(x uint64) uint64 {
	return (quoteOrBackslash(x) | (x-lsb*0x20)&^x) & msb
}

// structural marks the bytes that matter when skipping a container.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// strSafe marks bytes that need no attention inside a string.
var strSafe = func() (t [256]bool) {
	for i := 0x20; i < 256; i++ {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return
}()

// Valid reports whether data holds exactly one JSON value, optionally
// surrounded by whitespace. It checks the full grammar (RFC 8259), including
// escapes and number syntax; it does not check UTF-8.
func Valid(data []byte) bool {
	i := SkipSpace(data, 0)
	end := validValue(data, i, 0)
	if end < 0 {
		return false
	}
	return SkipSpace(data, end) == len(data)
}

// ValidAt validates the one JSON value starting at data[i] (no leading
// whitespace) with the same rules as Valid, and returns the index just past
// it, or -1 when it is malformed. Bytes after the value are not looked at, so
// a caller can validate a document piece by piece while walking it.
func ValidAt(data []byte, i int) int {
	if i < 0 {
		return -1
	}
	return validValue(data, i, 0)
}

// ValidAtDepth is ValidAt for a value nested depth levels below the top of
// the document (the top-level value is at depth 0, a member of it at 1). A
// caller that walks a document itself and validates the values below its
// steps passes their depth, so that MaxDepth holds for the whole document
// as in Valid: ValidAt would count again from 0 below each step.
func ValidAtDepth(data []byte, i, depth int) int {
	if i < 0 || depth < 0 {
		return -1
	}
	return validValue(data, i, depth)
}

// MaxDepth bounds nesting so hostile input cannot exhaust the stack: an
// object or array nested deeper than MaxDepth levels, counted from the top
// of the document, is not valid.
const MaxDepth = 10000

// validValue validates the value at data[i] (no leading whitespace) and
// returns the index just past it, or -1.
func validValue(data []byte, i, depth int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return validString(data, i)
	case '{':
		if depth >= MaxDepth {
			return -1
		}
		i = SkipSpace(data, i+1)
		if i < len(data) && data[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(data) || data[i] != '"' {
				return -1
			}
			i = validString(data, i)
			if i < 0 {
				return -1
			}
			i = SkipSpace(data, i)
			if i >= len(data) || data[i] != ':' {
				return -1
			}
			i = SkipSpace(data, i+1)
			i = validValue(data, i, depth+1)
			if i < 0 {
				return -1
			}
			i = SkipSpace(data, i)
			if i >= len(data) {
				return -1
			}
			if data[i] == '}' {
				return i + 1
			}
			if data[i] != ',' {
				return -1
			}
			i = SkipSpace(data, i+1)
		}
	case '[':
		if depth >= MaxDepth {
			return -1
		}
		i = SkipSpace(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1
		}
		for {
			i = validValue(data, i, depth+1)
			if i < 0 {
				return -1
			}
			i = SkipSpace(data, i)
			if i >= len(data) {
				return -1
			}
			if data[i] == ']' {
				return i + 1
			}
			if data[i] != ',' {
				return -1
			}
			i = SkipSpace(data, i+1)
		}
	case 't':
		return literal(data, i, "true")
	case 'f':
		return literal(data, i, "false")
	case 'n':
		return literal(data, i, "null")
	default:
		return validNumber(data, i)
	}
}

func literal(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// validString validates the string starting at the quote data[i].
func validString(data []byte, i int) int {
	end, _ := ValidString(data, i)
	return end
}

// ValidString validates the string starting at the quote data[i] with the
// rules of Valid, and returns the index just past its closing quote (-1
// when malformed) and whether it holds escapes (so a caller can use the
// bytes as they are when it does not).
func ValidString(data []byte, i int) (end int, escaped bool) {
	if i < 0 || i >= len(data) || data[i] != '"' {
		return -1, false
	}
	i++
	for {
		// Fast path: find the next byte that needs attention 8 bytes at a
		// time (SWAR), then finish byte by byte.
		for i+8 <= len(data) {
			if m := needsAttention(binary.LittleEndian.Uint64(data[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(data) && strSafe[data[i]] {
			i++
		}
		if i >= len(data) {
			return -1, false
		}
		switch data[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			if i+1 >= len(data) {
				return -1, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return -1, false
				}
				i += 6
			default:
				return -1, false
			}
		default: // control character
			return -1, false
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber validates a number per the JSON grammar.
func validNumber(data []byte, i int) int {
	if i < len(data) && data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return -1
	}
	if data[i] == '0' {
		i++
	} else if data[i] >= '1' && data[i] <= '9' {
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	} else {
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	return i
}

// Skip returns the index just past the value starting at data[i] (no
// leading whitespace), assuming data is valid JSON. On malformed input it
// returns -1 or an index that the caller's next check rejects; it never
// panics and never reads past data.
func Skip(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for {
			// Run over bytes that cannot change the nesting, 8 at a time.
			for i+8 <= len(data) && !structural[data[i]] && !structural[data[i+1]] && !structural[data[i+2]] &&
				!structural[data[i+3]] && !structural[data[i+4]] && !structural[data[i+5]] && !structural[data[i+6]] && !structural[data[i+7]] {
				i += 8
			}
			for i < len(data) && !structural[data[i]] {
				i++
			}
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"':
				i = skipString(data, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			default: // '}' or ']'
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	case 't':
		return literal(data, i, "true")
	case 'f':
		return literal(data, i, "false")
	case 'n':
		return literal(data, i, "null")
	default:
		return validNumber(data, i)
	}
}

// strPlain marks bytes that end nothing inside a string when skipping it
// (control characters are tolerated: Skip trusts its input).
var strPlain = func() (t [256]bool) {
	for i := range t {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return
}()

// skipString returns the index just past the string starting at data[i].
func skipString(data []byte, i int) int {
	end, _ := skipStringEsc(data, i)
	return end
}

// skipStringEsc is skipString that also reports whether the string holds
// escapes.
func skipStringEsc(data []byte, i int) (end int, escaped bool) {
	i++
	for {
		for i+8 <= len(data) {
			if m := quoteOrBackslash(binary.LittleEndian.Uint64(data[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(data) && strPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			return -1, escaped
		}
		if data[i] == '"' {
			return i + 1, escaped
		}
		escaped = true
		i += 2
	}
}
