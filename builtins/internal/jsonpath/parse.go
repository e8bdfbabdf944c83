// Package jsonpath parses the definite JSONPath subset of docs/transforms.md
// §6.2 and finds the values such paths name in raw JSON, in one validating
// pass and without allocating.
//
// Grammar (after a leading `$`, any number of):
//
//	.name       name: ASCII letters, digits, '_', '-' and any non-ASCII character
//	['name']    any characters; \' \" \\ \/ \b \f \n \r \t \uXXXX escapes
//	["name"]    the same with double quotes
//	[n]         array index, n >= 0, no leading zeros
//
// `$` alone names the whole document. Wildcards, recursive descent (`..`),
// filters, slices, unions and negative indexes are rejected, since a path
// must name at most one value. Whitespace is not allowed anywhere.
//
// The package is written for the subset rather than built on a general
// JSONPath library: RFC 9535 libraries reject names the spec allows
// (`.x-request-id`, `.1st`) and evaluate on decoded trees, where this code
// resolves every path of a template in one pass over the raw bytes.
package jsonpath

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// MaxIndex is the largest array index a path may hold.
const MaxIndex = 1<<31 - 1

// Error is a path that cannot be parsed. Offset is the byte offset of the
// offending character in the path (len(path) when the path ends too soon).
type Error struct {
	Path   string
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("path %q: %s", e.Path, e.Msg)
}

// Parse compiles path into the steps jsonscan.Get and Set follow. The
// returned error is always an *Error.
func Parse(path string) ([]jsonscan.Seg, error) {
	p := parser{s: path}
	segs, err := p.parse()
	if err != nil {
		return nil, err
	}
	return segs, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) fail(at int, format string, args ...any) error {
	return &Error{Path: p.s, Offset: at, Msg: fmt.Sprintf(format, args...)}
}

const definite = "only definite paths are supported: $.name, $['name'], $[0]"

func (p *parser) parse() ([]jsonscan.Seg, error) {
	s := p.s
	if s == "" {
		return nil, p.fail(0, "a path must start with $ (e.g. $.data.key)")
	}
	if s[0] != '$' {
		return nil, p.fail(0, "a path must start with $ (e.g. $.data.key), got %s", quoteRune(s, 0))
	}
	if !utf8.ValidString(s) {
		at := 0
		for at < len(s) {
			r, n := utf8.DecodeRuneInString(s[at:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			at += n
		}
		return nil, p.fail(at, "the path is not valid UTF-8")
	}
	segs := []jsonscan.Seg{}
	p.i = 1
	for p.i < len(s) {
		switch s[p.i] {
		case '.':
			seg, err := p.dotName()
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		case '[':
			seg, err := p.bracket()
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		default:
			return nil, p.fail(p.i, "expected . or [ after %q, got %s", s[:p.i], quoteRune(s, p.i))
		}
	}
	return segs, nil
}

// nameByte marks the ASCII bytes allowed in a .name; bytes >= 0x80 (non-ASCII
// characters) are allowed too.
var nameByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['-'] = true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return
}()

func (p *parser) dotName() (jsonscan.Seg, error) {
	s := p.s
	start := p.i + 1 // past '.'
	if start >= len(s) {
		return jsonscan.Seg{}, p.fail(start, "a name must follow the final '.'")
	}
	switch s[start] {
	case '.':
		return jsonscan.Seg{}, p.fail(p.i, "recursive descent (..) is not supported; %s", definite)
	case '*':
		return jsonscan.Seg{}, p.fail(start, "wildcard (*) is not supported; %s", definite)
	case '[':
		return jsonscan.Seg{}, p.fail(p.i, "'.' must be followed by a name, not '['; write $['name'] or $.name")
	}
	j := start
	for j < len(s) && nameByte[s[j]] {
		j++
	}
	if j == start {
		return jsonscan.Seg{}, p.fail(start, "%s is not allowed in a .name (letters, digits, '_', '-' and non-ASCII characters are); quote other names: $['a b']", quoteRune(s, start))
	}
	p.i = j
	return jsonscan.Seg{Key: s[start:j]}, nil
}

func (p *parser) bracket() (jsonscan.Seg, error) {
	s := p.s
	open := p.i
	i := open + 1
	if i >= len(s) {
		return jsonscan.Seg{}, p.fail(i, "unclosed '[': expected a quoted name or an index")
	}
	switch c := s[i]; {
	case c == '\'' || c == '"':
		name, end, err := p.quoted(i)
		if err != nil {
			return jsonscan.Seg{}, err
		}
		if end >= len(s) {
			return jsonscan.Seg{}, p.fail(end, "unclosed '[': expected ']' after the name")
		}
		if s[end] != ']' {
			if s[end] == ',' {
				return jsonscan.Seg{}, p.fail(end, "unions ([a,b]) are not supported; %s", definite)
			}
			return jsonscan.Seg{}, p.fail(end, "expected ']' after the name, got %s", quoteRune(s, end))
		}
		p.i = end + 1
		return jsonscan.Seg{Key: name}, nil
	case c >= '0' && c <= '9':
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j < len(s) {
			switch s[j] {
			case ':':
				return jsonscan.Seg{}, p.fail(j, "slices ([a:b]) are not supported; %s", definite)
			case ',':
				return jsonscan.Seg{}, p.fail(j, "unions ([a,b]) are not supported; %s", definite)
			}
		}
		if j-i > 1 && s[i] == '0' {
			return jsonscan.Seg{}, p.fail(i, "an index must not have leading zeros (write [%s])", strings.TrimLeft(s[i:j], "0"))
		}
		n, err := strconv.Atoi(s[i:j])
		if err != nil || n > MaxIndex {
			return jsonscan.Seg{}, p.fail(i, "index %s is too large (at most %d)", s[i:j], MaxIndex)
		}
		if j >= len(s) {
			return jsonscan.Seg{}, p.fail(j, "unclosed '[': expected ']' after the index")
		}
		if s[j] != ']' {
			return jsonscan.Seg{}, p.fail(j, "expected ']' after the index, got %s", quoteRune(s, j))
		}
		p.i = j + 1
		return jsonscan.Seg{Index: n, IsIndex: true}, nil
	case c == '-':
		return jsonscan.Seg{}, p.fail(i, "negative indexes are not supported (an index counts from 0 at the start of the array)")
	case c == '*':
		return jsonscan.Seg{}, p.fail(i, "wildcard ([*]) is not supported; %s", definite)
	case c == '?':
		return jsonscan.Seg{}, p.fail(i, "filters ([?...]) are not supported; %s", definite)
	case c == ':':
		return jsonscan.Seg{}, p.fail(i, "slices ([a:b]) are not supported; %s", definite)
	case c == ']':
		return jsonscan.Seg{}, p.fail(i, "empty brackets: expected a quoted name or an index")
	default:
		return jsonscan.Seg{}, p.fail(i, "expected a quoted name or an index after '[', got %s", quoteRune(s, i))
	}
}

// quoted reads the quoted name starting at the quote s[q] and returns it
// decoded and the index just past the closing quote.
func (p *parser) quoted(q int) (string, int, error) {
	s := p.s
	quote := s[q]
	i := q + 1
	var b []byte // nil until an escape is seen
	start := i
	for {
		if i >= len(s) {
			return "", 0, p.fail(i, "unterminated quoted name: expected closing %c", quote)
		}
		c := s[i]
		switch {
		case c == quote:
			if b == nil {
				return s[start:i], i + 1, nil
			}
			return string(append(b, s[start:i]...)), i + 1, nil
		case c < 0x20:
			return "", 0, p.fail(i, "control character %s in a quoted name; write it as an escape such as \\n or \\u0001", quoteRune(s, i))
		case c == '\\':
			b = append(b, s[start:i]...)
			r, n, ok := unescape(s, i, quote)
			if !ok {
				return "", 0, p.fail(i, "invalid escape in a quoted name (valid: \\%c \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", quote)
			}
			b = utf8.AppendRune(b, r)
			i += n
			start = i
		default:
			i++
		}
	}
}

// unescape decodes the escape at s[i] ('\\') inside a name quoted with
// quote, returning the rune and the bytes consumed. A surrogate pair written
// as two \u escapes decodes to one character; a lone surrogate is an error.
func unescape(s string, i int, quote byte) (rune, int, bool) {
	if i+1 >= len(s) {
		return 0, 0, false
	}
	switch c := s[i+1]; c {
	case quote, '\\', '/':
		return rune(c), 2, true
	case 'b':
		return '\b', 2, true
	case 'f':
		return '\f', 2, true
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	case 'u':
		r1, ok := hex4(s, i+2)
		if !ok {
			return 0, 0, false
		}
		if !utf16.IsSurrogate(r1) {
			return r1, 6, true
		}
		if r1 >= 0xDC00 || i+12 > len(s) || s[i+6] != '\\' || s[i+7] != 'u' {
			return 0, 0, false
		}
		r2, ok := hex4(s, i+8)
		if !ok {
			return 0, 0, false
		}
		r := utf16.DecodeRune(r1, r2)
		if r == utf8.RuneError {
			return 0, 0, false
		}
		return r, 12, true
	}
	return 0, 0, false
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s[i:i+4], 16, 32)
	return rune(n), err == nil
}

// quoteRune renders the character at s[i] for a message.
func quoteRune(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.QuoteRune(r)
}

// Format renders segs as a path that Parse reads back to the same steps:
// .name where the name allows it, ['name'] otherwise.
func Format(segs []jsonscan.Seg) string {
	b := []byte{'$'}
	for _, s := range segs {
		if s.IsIndex {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.Index), 10)
			b = append(b, ']')
			continue
		}
		if plainName(s.Key) {
			b = append(b, '.')
			b = append(b, s.Key...)
			continue
		}
		b = append(b, "['"...)
		for _, r := range s.Key {
			switch {
			case r == '\'' || r == '\\':
				b = append(b, '\\', byte(r))
			case r < 0x20:
				b = fmt.Appendf(b, `\u%04x`, r)
			default:
				b = utf8.AppendRune(b, r)
			}
		}
		b = append(b, "']"...)
	}
	return string(b)
}

func plainName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !nameByte[k[i]] {
			return false
		}
	}
	return true
}
