package pattern

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// vkind is the type of one value of a pattern document.
type vkind uint8

const (
	vNull vkind = iota
	vBool
	vNumber
	vString
	vObject
	vArray
	vOther // a TOML date/time or another Go type JSON cannot express
)

// value is a pattern document node, the common form of the TOML tree and
// the JSON text, so both inputs go through one compiler and behave alike.
type value struct {
	kind vkind
	b    bool
	s    string // string content; the number's text for numbers
	f    float64
	fOK  bool // the number is a finite binary64
	obj  []member
	arr  []*value
	off  int    // byte offset in the JSON text, -1 for TOML
	what string // vOther: what it is, for messages
}

type member struct {
	key string
	val *value
}

func (v *value) typeName() string {
	switch v.kind {
	case vNull:
		return "null"
	case vBool:
		return "a boolean"
	case vNumber:
		return "a number"
	case vString:
		return "a string"
	case vObject:
		return "an object"
	case vArray:
		return "an array"
	}
	return v.what
}

// fromTree converts a BurntSushi/toml generic value.
func fromTree(x any) *value {
	v := &value{off: -1}
	switch t := x.(type) {
	case nil:
		v.kind = vNull
	case bool:
		v.kind, v.b = vBool, t
	case string:
		v.kind, v.s = vString, t
	case int64:
		v.setInt(t)
	case int:
		v.setInt(int64(t))
	case int32:
		v.setInt(int64(t))
	case uint64:
		v.kind, v.s, v.f, v.fOK = vNumber, strconv.FormatUint(t, 10), float64(t), true
	case float64:
		v.kind, v.s, v.f = vNumber, strconv.FormatFloat(t, 'g', -1, 64), t
		v.fOK = !math.IsInf(t, 0) && !math.IsNaN(t)
	case map[string]any:
		v.kind = vObject
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v.obj = append(v.obj, member{k, fromTree(t[k])})
		}
	case []any:
		v.kind = vArray
		for _, e := range t {
			v.arr = append(v.arr, fromTree(e))
		}
	case []map[string]any:
		v.kind = vArray
		for _, e := range t {
			v.arr = append(v.arr, fromTree(e))
		}
	case time.Time:
		v.kind, v.what = vOther, "a TOML date/time"
	default:
		v.kind, v.what = vOther, fmt.Sprintf("a value of Go type %T", x)
	}
	return v
}

func (v *value) setInt(i int64) {
	v.kind, v.s, v.f, v.fOK = vNumber, strconv.FormatInt(i, 10), float64(i), true
}

// fromJSON parses pattern JSON text, keeping each value's byte offset.
// Duplicate keys: the last one wins, as with encoding/json.
func fromJSON(text []byte) (*value, *Problem) {
	// RawMessage checks the syntax only (a number too big for binary64 is
	// the compiler's business, reported at its path).
	var syntax *json.SyntaxError
	var raw json.RawMessage
	if err := json.Unmarshal(text, &raw); err != nil {
		off := len(text)
		if errors.As(err, &syntax) && syntax.Offset > 0 && int(syntax.Offset) <= len(text) &&
			!strings.HasPrefix(syntax.Error(), "unexpected end") {
			off = int(syntax.Offset) - 1 // Offset counts the bytes read, the bad one included
		}
		return nil, &Problem{Code: CodeJSONSyntax, Detail: "pattern_json is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: "), Offset: off}
	}
	// encoding/json accepts what jsonscan.Valid accepts except invalid
	// UTF-8, which both pass through; the walk below cannot fail.
	i := jsonscan.SkipSpace(text, 0)
	v, _ := buildJSON(text, i)
	if v == nil {
		return nil, &Problem{Code: CodeJSONSyntax, Detail: "pattern_json is not valid JSON", Offset: i}
	}
	return v, nil
}

func buildJSON(d []byte, i int) (*value, int) {
	v := &value{off: i}
	if i >= len(d) {
		return nil, -1
	}
	switch jsonscan.KindOf(d[i]) {
	case jsonscan.Null:
		v.kind = vNull
		return v, i + 4
	case jsonscan.True:
		v.kind, v.b = vBool, true
		return v, i + 4
	case jsonscan.False:
		v.kind = vBool
		return v, i + 5
	case jsonscan.Number:
		end := jsonscan.Skip(d, i)
		if end < 0 {
			return nil, -1
		}
		v.kind, v.s = vNumber, string(d[i:end])
		f, err := strconv.ParseFloat(v.s, 64)
		v.f, v.fOK = f, err == nil
		return v, end
	case jsonscan.String:
		end := jsonscan.Skip(d, i)
		if end < 0 {
			return nil, -1
		}
		s, ok := jsonscan.AppendString(nil, d[i:end])
		if !ok {
			return nil, -1
		}
		v.kind, v.s = vString, string(s)
		return v, end
	// Arrays and objects are walked here rather than with jsonscan's
	// iterators: those find where a value ends by skipping it, after
	// buildJSON already walked it, so every level scanned its whole
	// subtree again and a pattern nested n deep took n² (2,000 levels of
	// $or: 1.9 s before the compiler saw them). Each byte is read once.
	case jsonscan.Array:
		v.kind = vArray
		v.arr = []*value{}
		i = jsonscan.SkipSpace(d, i+1)
		if i < len(d) && d[i] == ']' {
			return v, i + 1
		}
		for {
			e, end := buildJSON(d, i)
			if e == nil {
				return nil, -1
			}
			v.arr = append(v.arr, e)
			i = jsonscan.SkipSpace(d, end)
			switch {
			case i < len(d) && d[i] == ',':
				i = jsonscan.SkipSpace(d, i+1)
			case i < len(d) && d[i] == ']':
				return v, i + 1
			default:
				return nil, -1
			}
		}
	case jsonscan.Object:
		v.kind = vObject
		byKey := map[string]*value{}
		i = jsonscan.SkipSpace(d, i+1)
		if i < len(d) && d[i] == '}' {
			i++
		} else {
			for {
				if i >= len(d) || d[i] != '"' {
					return nil, -1
				}
				ke := jsonscan.Skip(d, i)
				if ke < 0 {
					return nil, -1
				}
				key, ok := jsonscan.AppendString(nil, d[i:ke])
				if !ok {
					return nil, -1
				}
				i = jsonscan.SkipSpace(d, ke)
				if i >= len(d) || d[i] != ':' {
					return nil, -1
				}
				e, end := buildJSON(d, jsonscan.SkipSpace(d, i+1))
				if e == nil {
					return nil, -1
				}
				byKey[string(key)] = e
				i = jsonscan.SkipSpace(d, end)
				if i < len(d) && d[i] == ',' {
					i = jsonscan.SkipSpace(d, i+1)
					continue
				}
				if i < len(d) && d[i] == '}' {
					i++
					break
				}
				return nil, -1
			}
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		v.obj = make([]member, 0, len(keys))
		for _, k := range keys {
			v.obj = append(v.obj, member{k, byKey[k]})
		}
		return v, i
	}
	return nil, -1
}
