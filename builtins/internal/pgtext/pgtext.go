// Package pgtext turns PostgreSQL values in their text output format (what
// pgoutput and text-format queries send) into typed JSON with the cdc
// package's appenders: numbers as numbers, numeric as strings, json
// embedded, timestamps as RFC 3339, bytea as base64, arrays as arrays.
package pgtext

import (
	"encoding/hex"
	"slices"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
)

// kind is how a column's text (PostgreSQL's output format, as pgoutput and
// a text-format query send it) becomes JSON.
type kind uint8

const (
	kString      kind = iota // JSON string of the text
	kNumber                  // integers and floats: a number (NaN, Infinity as strings)
	kNumeric                 // numeric: a string, or a number with decimal_as_number
	kBool                    // "t"/"f"
	kJSON                    // json, jsonb: embedded
	kTimestamptz             // "2026-01-02 03:04:05.6+00" -> RFC 3339
	kTimestamp               // without time zone: RFC 3339 with Z
	kBytea                   // "\x0102" -> base64
	kArray                   // "{...}" -> JSON array of elem
)

// ColType is the conversion of one column: its kind and, for arrays, the
// kind of the elements and their delimiter.
type ColType struct {
	kind kind
	elem kind
	// delim is the type's pg_type.typdelim, which separates the elements
	// of an array of it (of an array type: of its elements); 0 is ','.
	// Every built-in type but box uses ','; box[] reads '{(1,1),(0,0);(2,2),(1,1)}'.
	delim byte
	name  string // type name, for the docs and errors
}

// delimiter is the array element separator ct records.
func (ct ColType) delimiter() byte {
	if ct.delim == 0 {
		return ','
	}
	return ct.delim
}

// Name returns the type's name.
func (ct ColType) Name() string { return ct.name }

// builtinTypes maps the OIDs of PostgreSQL's built-in types to their
// conversion. Types not listed (enums, domains, user arrays) are looked up
// in pg_type once (see TypeCache).
var builtinTypes = map[uint32]ColType{
	16: {kind: kBool, name: "bool"}, 17: {kind: kBytea, name: "bytea"},
	20: {kind: kNumber, name: "int8"}, 21: {kind: kNumber, name: "int2"}, 23: {kind: kNumber, name: "int4"},
	26: {kind: kNumber, name: "oid"}, 28: {kind: kNumber, name: "xid"}, 5069: {kind: kNumber, name: "xid8"},
	700: {kind: kNumber, name: "float4"}, 701: {kind: kNumber, name: "float8"}, 1700: {kind: kNumeric, name: "numeric"},
	114: {kind: kJSON, name: "json"}, 3802: {kind: kJSON, name: "jsonb"},
	1184: {kind: kTimestamptz, name: "timestamptz"}, 1114: {kind: kTimestamp, name: "timestamp"},
	25: {kind: kString, name: "text"}, 1043: {kind: kString, name: "varchar"}, 1042: {kind: kString, name: "bpchar"},
	19: {kind: kString, name: "name"}, 2950: {kind: kString, name: "uuid"}, 1082: {kind: kString, name: "date"},
	1083: {kind: kString, name: "time"}, 1266: {kind: kString, name: "timetz"}, 1186: {kind: kString, name: "interval"},
	869: {kind: kString, name: "inet"}, 650: {kind: kString, name: "cidr"}, 829: {kind: kString, name: "macaddr"},
	// arrays
	1000: {kind: kArray, elem: kBool, name: "bool[]"}, 1001: {kind: kArray, elem: kBytea, name: "bytea[]"},
	1005: {kind: kArray, elem: kNumber, name: "int2[]"}, 1007: {kind: kArray, elem: kNumber, name: "int4[]"},
	1016: {kind: kArray, elem: kNumber, name: "int8[]"}, 1021: {kind: kArray, elem: kNumber, name: "float4[]"},
	1022: {kind: kArray, elem: kNumber, name: "float8[]"}, 1231: {kind: kArray, elem: kNumeric, name: "numeric[]"},
	1009: {kind: kArray, elem: kString, name: "text[]"}, 1015: {kind: kArray, elem: kString, name: "varchar[]"},
	1014: {kind: kArray, elem: kString, name: "bpchar[]"}, 2951: {kind: kArray, elem: kString, name: "uuid[]"},
	199: {kind: kArray, elem: kJSON, name: "json[]"}, 3807: {kind: kArray, elem: kJSON, name: "jsonb[]"},
	1185: {kind: kArray, elem: kTimestamptz, name: "timestamptz[]"}, 1115: {kind: kArray, elem: kTimestamp, name: "timestamp[]"},
	1182: {kind: kArray, elem: kString, name: "date[]"}, 1028: {kind: kArray, elem: kNumber, name: "oid[]"},
}

// Converter turns column text into JSON. scratch is reused for array
// elements; it is not safe for concurrent use.
type Converter struct {
	DecimalAsNumber bool
	scratch         []byte // unescaped array element
	raw             []byte // decoded bytea
}

// AppendValue appends the JSON form of text, a value of type ct.
func (c *Converter) AppendValue(dst []byte, ct ColType, text []byte) []byte {
	if ct.kind == kArray {
		out, ok := c.appendArray(dst, ct.elem, ct.delimiter(), text)
		if ok {
			return out
		}
		return cdc.AppendString(dst, text)
	}
	return c.appendScalar(dst, ct.kind, text)
}

func (c *Converter) appendScalar(dst []byte, k kind, text []byte) []byte {
	switch k {
	case kNumber:
		return cdc.AppendNumberText(dst, text)
	case kNumeric:
		return cdc.AppendDecimal(dst, text, c.DecimalAsNumber)
	case kBool:
		switch string(text) {
		case "t", "true":
			return cdc.AppendBool(dst, true)
		case "f", "false":
			return cdc.AppendBool(dst, false)
		}
	case kJSON:
		return cdc.AppendJSON(dst, text)
	case kTimestamptz, kTimestamp:
		if out, ok := appendTimestamp(dst, text, k == kTimestamptz); ok {
			return out
		}
	case kBytea:
		if len(text) >= 2 && text[0] == '\\' && text[1] == 'x' && len(text)%2 == 0 {
			n := (len(text) - 2) / 2
			c.raw = slices.Grow(c.raw[:0], n)[:n]
			if _, err := hex.Decode(c.raw, text[2:]); err == nil {
				return cdc.AppendBytes(dst, c.raw)
			}
		}
	}
	return cdc.AppendString(dst, text)
}

// appendTimestamp rewrites PostgreSQL's ISO output ("2026-01-02
// 03:04:05.123456+00", the session in UTC) as RFC 3339
// ("2026-01-02T03:04:05.123456Z"). Without a time zone the digits are kept
// and marked Z. Anything else (infinity, BC dates, second-level offsets)
// is not rewritten: ok is false and the caller keeps the text.
func appendTimestamp(dst, text []byte, tz bool) ([]byte, bool) {
	// date part: at least YYYY-MM-DD, then a space, then hh:mm:ss.
	sp := -1
	for i, ch := range text {
		if ch == ' ' {
			sp = i
			break
		}
		if (ch < '0' || ch > '9') && ch != '-' {
			return dst, false
		}
	}
	if sp < 10 || len(text) < sp+9 {
		return dst, false
	}
	rest := text[sp+1:]
	// time: hh:mm:ss[.frac]
	if rest[2] != ':' || rest[5] != ':' || !digits(rest[0:2]) || !digits(rest[3:5]) || !digits(rest[6:8]) {
		return dst, false
	}
	i := 8
	if i < len(rest) && rest[i] == '.' {
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == i+1 {
			return dst, false
		}
		i = j
	}
	clock, zone := rest[:i], rest[i:]
	start := len(dst)
	dst = append(dst, '"')
	dst = append(dst, text[:sp]...)
	dst = append(dst, 'T')
	dst = append(dst, clock...)
	switch {
	case !tz && len(zone) == 0:
		dst = append(dst, 'Z')
	case tz && len(zone) == 3 && (zone[0] == '+' || zone[0] == '-') && digits(zone[1:3]):
		if zone[1] == '0' && zone[2] == '0' {
			dst = append(dst, 'Z')
		} else {
			dst = append(dst, zone...)
			dst = append(dst, ":00"...)
		}
	case tz && len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone[1:3]) && zone[3] == ':' && digits(zone[4:6]):
		dst = append(dst, zone...)
	default:
		return dst[:start], false
	}
	return append(dst, '"'), true
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// appendArray converts PostgreSQL's array literal ('{1,2,NULL}',
// '{"a b","c\"d"}', '{{1,2},{3,4}}', '[0:1]={1,2}') to a JSON array whose
// elements, separated by delim, are converted as elem. ok is false when
// text is not a well-formed literal; dst is then unchanged.
func (c *Converter) appendArray(dst []byte, elem kind, delim byte, text []byte) ([]byte, bool) {
	start := len(dst)
	i := 0
	if len(text) > 0 && text[0] == '[' {
		// Explicit bounds: skip "[lo:hi]...=".
		for i < len(text) && text[i] != '=' {
			i++
		}
		i++
	}
	out, end, ok := c.appendArrayAt(dst, elem, delim, text, i, 0)
	if !ok || end != len(text) {
		return dst[:start], false
	}
	return out, true
}

// appendArrayAt converts the array starting at text[i] ('{') and returns
// the index just past its '}'.
func (c *Converter) appendArrayAt(dst []byte, elem kind, delim byte, text []byte, i, depth int) ([]byte, int, bool) {
	if i >= len(text) || text[i] != '{' || depth > 6 {
		return dst, i, false
	}
	i++
	dst = append(dst, '[')
	if i < len(text) && text[i] == '}' {
		return append(dst, ']'), i + 1, true
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		if i >= len(text) {
			return dst, i, false
		}
		var ok bool
		switch text[i] {
		case '{':
			dst, i, ok = c.appendArrayAt(dst, elem, delim, text, i, depth+1)
			if !ok {
				return dst, i, false
			}
		case '"':
			j := i + 1
			c.scratch = c.scratch[:0]
			for ; j < len(text) && text[j] != '"'; j++ {
				if text[j] == '\\' {
					j++
					if j >= len(text) {
						return dst, j, false
					}
				}
				c.scratch = append(c.scratch, text[j])
			}
			if j >= len(text) {
				return dst, j, false
			}
			dst = c.appendElem(dst, elem, c.scratch)
			i = j + 1
		default:
			j := i
			for j < len(text) && text[j] != delim && text[j] != '}' {
				if text[j] == '"' || text[j] == '{' || text[j] == '\\' {
					return dst, j, false
				}
				j++
			}
			tok := text[i:j]
			if len(tok) == 0 {
				return dst, j, false
			}
			if len(tok) == 4 && (tok[0]|0x20) == 'n' && (tok[1]|0x20) == 'u' && (tok[2]|0x20) == 'l' && (tok[3]|0x20) == 'l' {
				dst = cdc.AppendNull(dst)
			} else {
				dst = c.appendElem(dst, elem, tok)
			}
			i = j
		}
		if i >= len(text) {
			return dst, i, false
		}
		switch text[i] {
		case delim:
			i++
		case '}':
			return append(dst, ']'), i + 1, true
		default:
			return dst, i, false
		}
	}
}

// appendElem converts one array element.
func (c *Converter) appendElem(dst []byte, elem kind, text []byte) []byte {
	return c.appendScalar(dst, elem, text)
}
