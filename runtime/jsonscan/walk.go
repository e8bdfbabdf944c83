package jsonscan

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Members iterates the members of an object.
//
//	it := jsonscan.Members(data, start)
//	for it.Next() { key := it.Key(); vs, ve := it.Value() ... }
//	if it.Err() { malformed }
type Members struct {
	data    []byte
	i       int
	key     []byte
	escaped bool
	vs, ve  int
	done    bool
	err     bool
	first   bool
}

// MembersOf starts iterating the object at data[i] (no leading whitespace).
// A value that is not an object yields no members and no error; check the
// kind first when it matters.
func MembersOf(data []byte, i int) Members {
	if i >= len(data) || data[i] != '{' {
		return Members{done: true}
	}
	return Members{data: data, i: i + 1, first: true, ve: 0}
}

// Next advances to the next member.
func (m *Members) Next() bool {
	if m.done {
		return false
	}
	d := m.data
	if m.ve < 0 { // the previous value was never skipped
		if m.ve = Skip(d, m.vs); m.ve < 0 {
			return m.fail()
		}
		m.i = m.ve
	}
	i := SkipSpace(d, m.i)
	if i < len(d) && !m.first {
		if d[i] == '}' {
			m.done, m.i = true, i+1
			return false
		}
		if d[i] != ',' {
			return m.fail()
		}
		i = SkipSpace(d, i+1)
	} else if i < len(d) && d[i] == '}' {
		m.done, m.i = true, i+1
		return false
	}
	m.first = false
	if i >= len(d) || d[i] != '"' {
		return m.fail()
	}
	ks := i + 1
	ke, esc := skipStringEsc(d, i)
	if ke < 0 {
		return m.fail()
	}
	m.key = d[ks : ke-1]
	m.escaped = esc
	i = SkipSpace(d, ke)
	if i >= len(d) || d[i] != ':' {
		return m.fail()
	}
	i = SkipSpace(d, i+1)
	if i >= len(d) {
		return m.fail()
	}
	// The value's end is found only when needed: a lookup that descends
	// into this value never pays for skipping it.
	m.vs, m.ve = i, -1
	return true
}

func (m *Members) fail() bool {
	m.done, m.err = true, true
	return false
}

// Key returns the raw key bytes between the quotes (escapes not decoded).
func (m *Members) Key() []byte { return m.key }

// KeyIs reports whether the member's key, decoded, equals k.
func (m *Members) KeyIs(k string) bool {
	if !m.escaped {
		return string(m.key) == k
	}
	return EscapedEqual(m.key, k)
}

// Value returns the span of the member's value. end is -1 when the value is
// malformed.
func (m *Members) Value() (start, end int) {
	if m.ve < 0 {
		m.ve = Skip(m.data, m.vs)
		if m.ve >= 0 {
			m.i = m.ve
		}
	}
	return m.vs, m.ve
}

// ValueStart returns where the member's value starts, without finding its
// end (cheaper when the caller descends into the value).
func (m *Members) ValueStart() int { return m.vs }

// End returns the index just past the object once Next returned false.
func (m *Members) End() int { return m.i }

// Err reports whether iteration stopped on malformed input.
func (m *Members) Err() bool { return m.err }

// Elements iterates the elements of an array.
type Elements struct {
	data   []byte
	i      int
	vs, ve int
	done   bool
	err    bool
	first  bool
}

// ElementsOf starts iterating the array at data[i] (no leading whitespace).
func ElementsOf(data []byte, i int) Elements {
	if i >= len(data) || data[i] != '[' {
		return Elements{done: true}
	}
	return Elements{data: data, i: i + 1, first: true}
}

// Next advances to the next element.
func (e *Elements) Next() bool {
	if e.done {
		return false
	}
	d := e.data
	if e.ve < 0 {
		if e.ve = Skip(d, e.vs); e.ve < 0 {
			e.done, e.err = true, true
			return false
		}
		e.i = e.ve
	}
	i := SkipSpace(d, e.i)
	if i < len(d) && d[i] == ']' && e.first {
		e.done, e.i = true, i+1
		return false
	}
	if !e.first {
		if i < len(d) && d[i] == ']' {
			e.done, e.i = true, i+1
			return false
		}
		if i >= len(d) || d[i] != ',' {
			e.done, e.err = true, true
			return false
		}
		i = SkipSpace(d, i+1)
	}
	e.first = false
	if i >= len(d) {
		e.done, e.err = true, true
		return false
	}
	e.vs, e.ve = i, -1
	return true
}

// Value returns the span of the current element; end is -1 when malformed.
func (e *Elements) Value() (start, end int) {
	if e.ve < 0 {
		e.ve = Skip(e.data, e.vs)
		if e.ve >= 0 {
			e.i = e.ve
		}
	}
	return e.vs, e.ve
}

// ValueStart returns where the current element starts.
func (e *Elements) ValueStart() int { return e.vs }

// End returns the index just past the array once Next returned false.
func (e *Elements) End() int { return e.i }

// Err reports whether iteration stopped on malformed input.
func (e *Elements) Err() bool { return e.err }

// Seg is one step of a definite path: an object key, or an array index when
// IsIndex is set.
type Seg struct {
	Key     string
	Index   int
	IsIndex bool
}

// Get returns the span of the value at path inside the JSON value data
// (leading whitespace allowed). An empty path returns the whole value.
func Get(data []byte, path []Seg) (start, end int, ok bool) {
	i := SkipSpace(data, 0)
	if i >= len(data) {
		return 0, 0, false
	}
	for _, s := range path {
		if s.IsIndex {
			el := ElementsOf(data, i)
			n := 0
			found := false
			for el.Next() {
				if n == s.Index {
					i = el.ValueStart()
					found = true
					break
				}
				n++
			}
			if !found {
				return 0, 0, false
			}
			continue
		}
		mem := MembersOf(data, i)
		found := false
		// The last duplicate key wins, as with encoding/json, so conditions
		// (which decode the event) and the scanner agree.
		for mem.Next() {
			if mem.KeyIs(s.Key) {
				i = mem.ValueStart()
				found = true
			}
		}
		if !found {
			return 0, 0, false
		}
	}
	end = Skip(data, i)
	if end < 0 {
		return 0, 0, false
	}
	return i, end, true
}

// EscapedEqual reports whether the raw string content raw (between quotes,
// with escapes) decodes to exactly k. It does not allocate.
func EscapedEqual(raw []byte, k string) bool {
	j := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			if j >= len(k) || k[j] != c {
				return false
			}
			i++
			j++
			continue
		}
		r, n := decodeEscape(raw, i)
		if n == 0 {
			return false
		}
		i += n
		var buf [4]byte
		w := utf8.EncodeRune(buf[:], r)
		if j+w > len(k) || k[j:j+w] != string(buf[:w]) {
			return false
		}
		j += w
	}
	return j == len(k)
}

// decodeEscape decodes the escape sequence at raw[i] ('\\'), returning the
// rune and the bytes consumed (0 when malformed). Surrogate pairs are
// combined; a lone surrogate decodes to U+FFFD as encoding/json does.
func decodeEscape(raw []byte, i int) (rune, int) {
	if i+1 >= len(raw) {
		return 0, 0
	}
	switch raw[i+1] {
	case '"':
		return '"', 2
	case '\\':
		return '\\', 2
	case '/':
		return '/', 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r1, ok := hex4(raw, i+2)
		if !ok {
			return 0, 0
		}
		if utf16.IsSurrogate(r1) {
			if i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if r2, ok := hex4(raw, i+8); ok {
					if r := utf16.DecodeRune(r1, r2); r != utf8.RuneError {
						return r, 12
					}
				}
			}
			return utf8.RuneError, 6
		}
		return r1, 6
	}
	return 0, 0
}

func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// AppendString appends the decoded content of the JSON string token tok
// (quotes included) to dst. ok is false when tok is not a valid string.
func AppendString(dst, tok []byte) (out []byte, ok bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return dst, false
	}
	raw := tok[1 : len(tok)-1]
	start := 0
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			i++
			continue
		}
		dst = append(dst, raw[start:i]...)
		r, n := decodeEscape(raw, i)
		if n == 0 {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
		i += n
		start = i
	}
	return append(dst, raw[start:]...), true
}

// StringContent returns the content of the string token tok without quotes
// when it holds no escapes (zero-copy), and ok=false otherwise, in which case
// the caller decodes it with AppendString.
func StringContent(tok []byte) (content []byte, ok bool) {
	if len(tok) < 2 {
		return nil, false
	}
	raw := tok[1 : len(tok)-1]
	for _, c := range raw {
		if c == '\\' {
			return nil, false
		}
	}
	return raw, true
}

// Float parses the number token tok as IEEE-754 binary64.
func Float(tok []byte) (float64, bool) {
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	return f, err == nil
}

// AppendQuoted appends s as a JSON string token (quotes included), escaping
// '"', '\\' and control characters; other bytes, including non-ASCII and
// '/', are copied as they are, except bytes that are not valid UTF-8: each
// becomes \ufffd, as in encoding/json, so the output is always valid JSON.
func AppendQuoted(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// AppendEscaped appends s escaped for the inside of a JSON string, without
// quotes: '"' and '\\' are backslash-escaped, \n \t \r \b \f use their short
// forms and other control characters \u00XX. Each byte that is not part of
// valid UTF-8 becomes \ufffd (JSON text is UTF-8, RFC 8259 §8.1).
func AppendEscaped(dst []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				start = i + 1
				continue
			}
			i += size - 1
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// AppendValidUTF8 appends s with each byte that is not part of valid UTF-8
// replaced by U+FFFD (its three UTF-8 bytes), as encoding/json decodes such
// input. Valid text is copied as it is.
func AppendValidUTF8(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			start = i + 1
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// AppendCompact appends the JSON value tok without insignificant whitespace.
// tok must be valid JSON.
func AppendCompact(dst, tok []byte) []byte {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '"':
			end := skipString(tok, i)
			if end < 0 {
				return append(dst, tok[i:]...)
			}
			dst = append(dst, tok[i:end]...)
			i = end - 1
		case ws[c]:
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// IsCompact reports whether tok holds no insignificant whitespace, so it can
// be copied as it is.
func IsCompact(tok []byte) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '"' {
			end := skipString(tok, i)
			if end < 0 {
				return true
			}
			i = end - 1
			continue
		}
		if ws[c] {
			return false
		}
	}
	return true
}
