package pattern

import (
	"strconv"
	"strings"
)

// Error codes of docs/filters.md ("Errors"), plus JSON_SYNTAX (pattern_json
// is not JSON) and PATTERN_TOO_COMPLEX (the $or alternatives multiply past
// what the matcher compiles; see docs/filters.md).
const (
	CodePatternNotObject   = "PATTERN_NOT_OBJECT"
	CodeEmptyObject        = "EMPTY_OBJECT"
	CodeNotArray           = "NOT_ARRAY"
	CodeEmptyArray         = "EMPTY_ARRAY"
	CodeNestedArray        = "NESTED_ARRAY"
	CodeBadOperatorObject  = "BAD_OPERATOR_OBJECT"
	CodeUnknownOperator    = "UNKNOWN_OPERATOR"
	CodeOperandType        = "OPERAND_TYPE"
	CodeNumericSyntax      = "NUMERIC_SYNTAX"
	CodeCIDRInvalid        = "CIDR_INVALID"
	CodeWildcardSyntax     = "WILDCARD_SYNTAX"
	CodeAnythingButSyntax  = "ANYTHING_BUT_SYNTAX"
	CodeOrSyntax           = "OR_SYNTAX"
	CodeTooManyExpressions = "TOO_MANY_EXPRESSIONS"
	CodeJSONSyntax         = "JSON_SYNTAX"
	CodeTooComplex         = "PATTERN_TOO_COMPLEX"
)

// Problem is one thing wrong with a pattern.
type Problem struct {
	// Code is one of the Code* constants.
	Code string
	// Detail says what is wrong and what would be valid (lowercase).
	Detail string
	// Path locates the offending value from the pattern root: object keys as
	// they are, array indexes as "[N]" (the config loader's path form). Empty
	// for the root itself.
	Path []string
	// Offset is the byte offset of the offending value inside the pattern's
	// JSON text (CompileJSON only), or -1 when unknown (the TOML form).
	Offset int
}

// Error renders the problem as
// `invalid event pattern at <json-path>: <CODE>: <detail>`.
func (p Problem) Error() string {
	return "invalid event pattern at " + JSONPath(p.Path) + ": " + p.Code + ": " + p.Detail
}

// Error is returned by Compile and CompileJSON. It lists every problem of
// the pattern, in a stable order (keys sorted, array elements in order).
type Error struct {
	Problems []Problem
}

// Error renders every problem, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// JSONPath renders a problem path as a JSONPath: `$`, `$.data.amount[0]`,
// keys that are not plain identifiers as `$["a.b"]`.
func JSONPath(path []string) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, el := range path {
		if isIndex(el) {
			b.WriteString(el)
			continue
		}
		if isIdent(el) {
			b.WriteByte('.')
			b.WriteString(el)
			continue
		}
		b.WriteByte('[')
		b.WriteString(strconv.Quote(el))
		b.WriteByte(']')
	}
	return b.String()
}

func isIndex(el string) bool {
	if len(el) < 3 || el[0] != '[' || el[len(el)-1] != ']' {
		return false
	}
	for _, c := range el[1 : len(el)-1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == '-' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }
