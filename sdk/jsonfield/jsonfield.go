// Package jsonfield reads and writes single fields of a JSON document in
// place, by path, without decoding the document: a byte scanner finds the
// value and the edit splices new bytes in. It never allocates when reading
// a field without escapes, and an edit costs one append of the document.
//
// A path is a list of object keys; on an array, a key that is a decimal
// number selects an element ("items", "0", "sku"). The document is assumed
// to be valid JSON (the host hands guests valid CloudEvents JSON); on
// invalid input the functions return not-found or an error, never panic.
package jsonfield

import (
	"bytes"
	"errors"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of a JSON value.
type Kind byte

// Kinds of JSON values.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

// ErrSyntax reports a document the scanner could not walk.
var ErrSyntax = errors.New("jsonfield: invalid JSON")

// ErrNotObject reports a path that runs into a value that is not an object
// or array.
var ErrNotObject = errors.New("jsonfield: path runs into a value that is not an object")

// ErrNotArray reports a value that is not an array where one is needed.
var ErrNotArray = errors.New("jsonfield: value is not an array")

// KindOf returns the kind of the raw value v.
func KindOf(v []byte) Kind {
	if len(v) == 0 {
		return Invalid
	}
	switch v[0] {
	case 'n':
		return Null
	case 't', 'f':
		return Bool
	case '"':
		return String
	case '[':
		return Array
	case '{':
		return Object
	}
	return Number
}

// Get returns the raw bytes of the value at path (a sub-slice of doc).
func Get(doc []byte, path ...string) ([]byte, bool) {
	s, e, ok := find(doc, path)
	if !ok {
		return nil, false
	}
	return doc[s:e], true
}

// Span returns where the value at path lies in doc: doc[start:end]. With
// it a handler reads a field and rewrites it in one scan:
//
//	s, e, ok := jsonfield.Span(doc, "data", "name")
//	out := append(append(append(dst, doc[:s]...), newValue...), doc[e:]...)
func Span(doc []byte, path ...string) (start, end int, ok bool) {
	return find(doc, path)
}

// GetString returns the contents of the string at path. Without escapes it
// is a sub-slice of doc; with escapes it is unescaped into a new slice.
func GetString(doc []byte, path ...string) ([]byte, bool) {
	v, ok := Get(doc, path...)
	if !ok || KindOf(v) != String {
		return nil, false
	}
	return Unquote(nil, v)
}

// GetInt returns the integer at path.
func GetInt(doc []byte, path ...string) (int64, bool) {
	v, ok := Get(doc, path...)
	if !ok || KindOf(v) != Number {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// GetFloat returns the number at path.
func GetFloat(doc []byte, path ...string) (float64, bool) {
	v, ok := Get(doc, path...)
	if !ok || KindOf(v) != Number {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// GetBool returns the boolean at path.
func GetBool(doc []byte, path ...string) (bool, bool) {
	v, ok := Get(doc, path...)
	if !ok || KindOf(v) != Bool {
		return false, false
	}
	return v[0] == 't', true
}

// Elements calls fn with the index and the raw bytes (sub-slices of v) of
// each element of the JSON array v, in order, until fn returns false. It
// returns ErrNotArray when v is not an array and ErrSyntax when the array
// is malformed (fn may have seen the elements before the fault).
func Elements(v []byte, fn func(i int, elem []byte) bool) error {
	j := skipWS(v, 0)
	if j >= len(v) || v[j] != '[' {
		return ErrNotArray
	}
	j = skipWS(v, j+1)
	if j < len(v) && v[j] == ']' {
		return nil
	}
	for n := 0; ; n++ {
		e := skipValue(v, j)
		if e < 0 {
			return ErrSyntax
		}
		if !fn(n, v[j:e]) {
			return nil
		}
		j = skipWS(v, e)
		if j >= len(v) {
			return ErrSyntax
		}
		switch v[j] {
		case ']':
			return nil
		case ',':
			j = skipWS(v, j+1)
		default:
			return ErrSyntax
		}
	}
}

// Members calls fn with the raw key (between its quotes, escapes left as
// they are) and the raw value of each member of the JSON object v, in
// order, until fn returns false. One pass reads any number of fields:
// cheaper than a Get per field when a handler needs several. It returns
// ErrNotObject when v is not an object and ErrSyntax when it is
// malformed.
func Members(v []byte, fn func(key, value []byte) bool) error {
	j := skipWS(v, 0)
	if j >= len(v) || v[j] != '{' {
		return ErrNotObject
	}
	j++
	for {
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		if j >= len(v) {
			return ErrSyntax
		}
		if v[j] == '}' {
			return nil
		}
		if v[j] != '"' {
			return ErrSyntax
		}
		ks := j + 1
		ke, _ := stringEnd(v, ks)
		if ke >= len(v) {
			return ErrSyntax
		}
		j = ke + 1
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		if j >= len(v) || v[j] != ':' {
			return ErrSyntax
		}
		j++
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		vs := j
		// Strings, numbers and literals are skipped inline: in WASM a call
		// costs more than the scan of a short value.
		ve := -1
		switch {
		case j >= len(v):
		case v[j] == '"':
			if k, _ := stringEnd(v, j+1); k < len(v) {
				ve = k + 1
			}
		case v[j] == '{' || v[j] == '[':
			ve = skipValue(v, j)
		default:
			k := j
			for k < len(v) && v[k] != ',' && v[k] != '}' && v[k] > ' ' {
				k++
			}
			if k > j {
				ve = k
			}
		}
		if ve < 0 {
			return ErrSyntax
		}
		if !fn(v[ks:ke], v[vs:ve]) {
			return nil
		}
		j = ve
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		if j < len(v) && v[j] == ',' {
			j++
		} else if j >= len(v) || v[j] != '}' {
			return ErrSyntax
		}
	}
}

// Set appends to dst a copy of doc in which the value at path is the raw
// JSON value. A missing key is added to its object, creating the objects
// on the way; a path through a scalar is ErrNotObject.
func Set(dst, doc, value []byte, path ...string) ([]byte, error) {
	if len(path) == 0 {
		return append(dst, value...), nil
	}
	i := skipWS(doc, 0)
	for depth := 0; ; depth++ {
		if i >= len(doc) {
			return dst, ErrSyntax
		}
		key := path[depth]
		vs, ve, found, err := member(doc, i, key, depth == len(path)-1)
		if err != nil {
			return dst, err
		}
		if found {
			if depth == len(path)-1 {
				dst = append(dst, doc[:vs]...)
				dst = append(dst, value...)
				return append(dst, doc[ve:]...), nil
			}
			i = vs
			continue
		}
		if doc[i] != '{' {
			return dst, ErrNotObject
		}
		// Insert the rest of the path before the object's closing brace.
		closeAt := vs
		empty := skipWS(doc, i+1) == closeAt
		dst = append(dst, doc[:closeAt]...)
		if !empty {
			dst = append(dst, ',')
		}
		for j := depth; j < len(path); j++ {
			dst = AppendString(dst, []byte(path[j]))
			dst = append(dst, ':')
			if j < len(path)-1 {
				dst = append(dst, '{')
			}
		}
		dst = append(dst, value...)
		for j := depth; j < len(path)-1; j++ {
			dst = append(dst, '}')
		}
		return append(dst, doc[closeAt:]...), nil
	}
}

// SetString is Set with s quoted as a JSON string.
func SetString(dst, doc, s []byte, path ...string) ([]byte, error) {
	// Quote into the tail of dst, past the bytes Set will write, then move.
	var buf [256]byte
	q := AppendString(buf[:0], s)
	return Set(dst, doc, q, path...)
}

// Delete appends to dst a copy of doc without the member at path (doc
// unchanged when it is absent).
func Delete(dst, doc []byte, path ...string) ([]byte, error) {
	if len(path) == 0 {
		return dst, ErrNotObject
	}
	i := skipWS(doc, 0)
	if len(path) > 1 {
		s, _, ok := find(doc, path[:len(path)-1])
		if !ok {
			return append(dst, doc...), nil
		}
		i = s
	}
	if i >= len(doc) || doc[i] != '{' {
		return append(dst, doc...), nil
	}
	// Walk members, remembering where each starts, to cut one with its comma.
	key := path[len(path)-1]
	j := i + 1
	prevEnd := -1 // end of the previous member's value
	for {
		j = skipWS(doc, j)
		if j >= len(doc) {
			return dst, ErrSyntax
		}
		if doc[j] == '}' {
			return append(dst, doc...), nil
		}
		ks := j
		ke := skipString(doc, j)
		if ke < 0 {
			return dst, ErrSyntax
		}
		c := skipWS(doc, ke)
		if c >= len(doc) || doc[c] != ':' {
			return dst, ErrSyntax
		}
		vs := skipWS(doc, c+1)
		ve := skipValue(doc, vs)
		if ve < 0 {
			return dst, ErrSyntax
		}
		if keyEquals(doc[ks:ke], key) {
			n := skipWS(doc, ve)
			if n < len(doc) && doc[n] == ',' { // cut "member,"
				dst = append(dst, doc[:ks]...)
				return append(dst, doc[skipWS(doc, n+1):]...), nil
			}
			if prevEnd >= 0 { // last member: cut ",member"
				dst = append(dst, doc[:prevEnd]...)
				return append(dst, doc[n:]...), nil
			}
			dst = append(dst, doc[:ks]...)
			return append(dst, doc[n:]...), nil
		}
		j = skipWS(doc, ve)
		prevEnd = ve
		if j < len(doc) && doc[j] == ',' {
			j++
		}
	}
}

// find returns the bounds of the value at path.
func find(doc []byte, path []string) (int, int, bool) {
	i := skipWS(doc, 0)
	e := -1
	for n, key := range path {
		vs, ve, found, err := member(doc, i, key, n == len(path)-1)
		if err != nil || !found {
			return 0, 0, false
		}
		i, e = vs, ve
	}
	if e < 0 {
		e = skipValue(doc, i)
	}
	if e < 0 {
		return 0, 0, false
	}
	return i, e, true
}

// member finds key in the object or array starting at doc[i]. The end of
// a found value is computed only when wantEnd is set (descending into a
// value does not need it); ve is then -1.
func member(doc []byte, i int, key string, wantEnd bool) (vs, ve int, found bool, err error) {
	if i >= len(doc) {
		return 0, 0, false, ErrSyntax
	}
	switch doc[i] {
	case '{':
		// One loop with the scans written out: in WASM a Go function call
		// costs far more than a few compares, so the common members
		// (strings, numbers, literals) are skipped without calls.
		j := i + 1
		for {
			for j < len(doc) && doc[j] <= ' ' {
				j++
			}
			if j >= len(doc) {
				return 0, 0, false, ErrSyntax
			}
			if doc[j] == '}' {
				return j, j + 1, false, nil // not found: vs is the closing brace
			}
			if doc[j] != '"' {
				return 0, 0, false, ErrSyntax
			}
			ks := j + 1
			k, esc := stringEnd(doc, ks)
			if k >= len(doc) {
				return 0, 0, false, ErrSyntax
			}
			ke := k
			j = ke + 1
			for j < len(doc) && doc[j] <= ' ' {
				j++
			}
			if j >= len(doc) || doc[j] != ':' {
				return 0, 0, false, ErrSyntax
			}
			j++
			for j < len(doc) && doc[j] <= ' ' {
				j++
			}
			if j >= len(doc) {
				return 0, 0, false, ErrSyntax
			}
			vs = j
			if (!esc && ke-ks == len(key) && string(doc[ks:ke]) == key) || (esc && keyEquals(doc[ks-1:ke+1], key)) {
				if !wantEnd {
					return vs, -1, true, nil
				}
				ve = skipValue(doc, vs)
				if ve < 0 {
					return 0, 0, false, ErrSyntax
				}
				return vs, ve, true, nil
			}
			switch doc[j] {
			case '"':
				k, _ := stringEnd(doc, j+1)
				if k >= len(doc) {
					return 0, 0, false, ErrSyntax
				}
				j = k + 1
			case '{', '[':
				if j = skipValue(doc, j); j < 0 {
					return 0, 0, false, ErrSyntax
				}
			default: // number, true, false, null
				for j < len(doc) && doc[j] != ',' && doc[j] != '}' && doc[j] > ' ' {
					j++
				}
			}
			for j < len(doc) && doc[j] <= ' ' {
				j++
			}
			if j < len(doc) && doc[j] == ',' {
				j++
			}
		}
	case '[':
		idx, ok := index(key)
		if !ok {
			return 0, 0, false, ErrNotObject
		}
		j := i + 1
		for n := 0; ; n++ {
			j = skipWS(doc, j)
			if j >= len(doc) {
				return 0, 0, false, ErrSyntax
			}
			if doc[j] == ']' {
				return 0, 0, false, ErrNotObject // cannot add to an array by index
			}
			ve = skipValue(doc, j)
			if ve < 0 {
				return 0, 0, false, ErrSyntax
			}
			if n == idx {
				return j, ve, true, nil
			}
			j = skipWS(doc, ve)
			if j < len(doc) && doc[j] == ',' {
				j++
			}
		}
	}
	return 0, 0, false, ErrNotObject
}

// load64 reads 8 bytes little-endian: encoding/binary's code without the
// package, which imports reflect (kept out of the SDK's dependencies).
func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// SWAR constants: one byte repeated, and the bytes' high bits.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// stringStop returns the index of the first '"' or '\\' in b at or after
// i, or len(b). It looks at 8 bytes per step: Go compiled to WASM pays
// several nanoseconds per byte in a byte loop (every branch goes through
// the function's block dispatch), about 0.7 per byte here.
func stringStop(b []byte, i int) int {
	for i+8 <= len(b) {
		x := load64(b[i:])
		q := x ^ (swarLo * '"')
		e := x ^ (swarLo * '\\')
		// The lowest flagged byte is exact; higher ones may be borrows.
		if m := ((q-swarLo)&^q | (e-swarLo)&^e) & swarHi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		i++
	}
	return i
}

// stringEnd returns the index of the closing quote of the string whose
// contents start at b[i] (len(b) when it does not end), and whether the
// string holds escapes.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for {
		i = stringStop(b, i)
		if i >= len(b) || b[i] == '"' {
			return i, esc
		}
		esc = true
		i += 2
	}
}

// keyEquals compares the quoted key q with key, unescaping when needed.
// Escapes only lengthen a key, so a raw key no longer than key matches
// only byte for byte.
func keyEquals(q []byte, key string) bool {
	raw := q[1 : len(q)-1]
	if len(raw) <= len(key) {
		return string(raw) == key
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	var buf [64]byte
	u, ok := Unquote(buf[:0], q)
	return ok && string(u) == key
}

func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i], or -1.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	k, _ := stringEnd(b, i+1)
	if k >= len(b) {
		return -1
	}
	return k + 1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := skipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	case c == 't' || c == 'n':
		if i+4 > len(b) {
			return -1
		}
		return i + 4
	case c == 'f':
		if i+5 > len(b) {
			return -1
		}
		return i + 5
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) {
			c := b[j]
			if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				j++
				continue
			}
			break
		}
		return j
	}
	return -1
}

// AppendString appends s as a quoted JSON string.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// UnquoteString returns the contents of the quoted JSON string q as
// encoding/json decodes a string: each byte that is not part of valid UTF-8
// becomes U+FFFD (config values and keys; Unquote keeps the bytes).
func UnquoteString(q []byte) (string, bool) {
	s, ok := Unquote(nil, q)
	if !ok || utf8.Valid(s) {
		return string(s), ok
	}
	out := make([]byte, 0, len(s)+8)
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	return string(out), true
}

// Unquote returns the contents of the quoted JSON string q: a sub-slice of
// q when it has no escapes, else the unescaped bytes appended to dst.
func Unquote(dst, q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	raw := q[1 : len(q)-1]
	esc := -1
	for i, c := range raw {
		if c == '\\' {
			esc = i
			break
		}
	}
	if esc < 0 {
		return raw, true
	}
	dst = append(dst, raw[:esc]...)
	for i := esc; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			dst = append(dst, raw[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := hex4(raw, i+1)
			if n < 0 {
				return nil, false
			}
			i += 4
			if r >= 0xd800 && r < 0xdc00 && i+6 < len(raw)+0 && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if r2, n2 := hex4(raw, i+3); n2 >= 0 && r2 >= 0xdc00 && r2 < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, rune(r))
		default:
			return nil, false
		}
	}
	return dst, true
}

func hex4(b []byte, i int) (int, int) {
	if i+4 > len(b) {
		return 0, -1
	}
	v := 0
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return 0, -1
		}
	}
	return v, 4
}

// index parses a canonical array index: decimal digits, no sign, no
// leading zero.
func index(k string) (int, bool) {
	if k == "" || len(k) > 9 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
