package builtin

// Sluice (SLUICE.md): what a builtin call costs, told before it runs. The
// VM charges it (OpCharge) against its budgets: steps, for the work of a
// call that walks its arguments, and bytes, for the strings it builds. A
// call past a budget never runs, so a condition cannot allocate first and
// be told afterwards (upstream's repeat counted after strings.Repeat).
//
// A step is an element of an array or a map walked, or 64 bytes of a
// string. The bytes are an upper bound of what the call allocates for its
// result: a string's bytes and 16 for its header (StringHeader). A cost
// function never panics: on arguments of the wrong kind it charges nothing
// and the builtin reports the error.

import (
	"math"
	"math/bits"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// bytesPerStep is the bytes of a string that make one step.
const bytesPerStep = 64

// StringHeader is what a string costs besides its bytes: its header, boxed
// in the interface the VM holds it in.
const StringHeader = 16

func init() {
	for _, f := range Builtins {
		f.Cost = costs[f.Name]
	}
}

var costs = map[string]func(args []any) (steps, bytes uint64){
	"string": func(args []any) (uint64, uint64) {
		var w walk
		w.format(reflect.ValueOf(arg(args, 0)))
		return w.steps, addSat(w.bytes, StringHeader)
	},
	"toJSON": func(args []any) (uint64, uint64) {
		var w walk
		w.json(reflect.ValueOf(arg(args, 0)), 0)
		return w.steps, addSat(w.bytes, 2*StringHeader) // the []byte, then the string
	},
	"upper": caseMapping,
	"lower": caseMapping,
	"trim":  scanFirst, "trimPrefix": scanFirst, "trimSuffix": scanFirst,
	"indexOf": scanFirst, "lastIndexOf": scanFirst, "hasPrefix": scanFirst, "hasSuffix": scanFirst,
	"split":      splitCost,
	"splitAfter": splitCost,
	"replace": func(args []any) (uint64, uint64) {
		s, ok1 := arg(args, 0).(string)
		old, ok2 := arg(args, 1).(string)
		repl, ok3 := arg(args, 2).(string)
		if !ok1 || !ok2 || !ok3 {
			return 0, 0
		}
		n := uint64(strings.Count(s, old))
		if len(args) == 4 {
			if limit, ok := count(arg(args, 3)); ok && limit >= 0 && uint64(limit) < n {
				n = uint64(limit)
			}
		}
		out := uint64(len(s))
		if len(repl) > len(old) {
			out = addSat(out, mulSat(n, uint64(len(repl)-len(old))))
		}
		return scan(s), addSat(out, StringHeader)
	},
	"repeat": func(args []any) (uint64, uint64) {
		s, ok := arg(args, 0).(string)
		n, ok2 := count(arg(args, 1))
		if !ok || !ok2 || n < 0 {
			return 0, 0
		}
		return 0, addSat(mulSat(uint64(len(s)), uint64(n)), StringHeader)
	},
	"join": func(args []any) (uint64, uint64) {
		glue := ""
		if len(args) == 2 {
			glue, _ = arg(args, 1).(string)
		}
		var n, out uint64
		switch a := arg(args, 0).(type) {
		case []string:
			for _, s := range a {
				out = addSat(out, uint64(len(s)))
			}
			n = uint64(len(a))
		case []any:
			for _, e := range a {
				if s, ok := e.(string); ok {
					out = addSat(out, uint64(len(s)))
				}
			}
			n = uint64(len(a))
			out = addSat(out, mulSat(n, 16)) // the []string made of them
		default:
			return 0, 0
		}
		if n > 1 {
			out = addSat(out, mulSat(n-1, uint64(len(glue))))
		}
		return n, addSat(out, StringHeader)
	},
	"fromJSON": func(args []any) (uint64, uint64) {
		s, _ := arg(args, 0).(string)
		return scan(s), mulSat(uint64(len(s)), 2) // the []byte copy, then the strings of the value
	},
	"toBase64": func(args []any) (uint64, uint64) {
		s, _ := arg(args, 0).(string)
		n := uint64(len(s))
		return 0, n + (n+2)/3*4 + StringHeader
	},
	"fromBase64": func(args []any) (uint64, uint64) {
		s, _ := arg(args, 0).(string)
		n := uint64(len(s))
		return 0, n + 2*(n/4*3+3) + StringHeader
	},
	"uniq": func(args []any) (uint64, uint64) {
		n := length(arg(args, 0))
		return mulSat(n, n) / 2, 0 // every element against those kept
	},
	"sort": func(args []any) (uint64, uint64) {
		n := length(arg(args, 0))
		return mulSat(n, uint64(bits.Len64(n))), 0
	},
	"keys":      elements,
	"values":    elements,
	"toPairs":   elements,
	"fromPairs": elements,
	"reverse":   elements,
	"concat":    elements,
	"flatten":   elements,
	"max":       elements,
	"min":       elements,
	"mean":      elements,
	"median":    elements,
}

// caseMapping is upper and lower: a string of the same length for ASCII,
// at most three times as long otherwise (a byte that is not UTF-8 becomes
// U+FFFD).
func caseMapping(args []any) (uint64, uint64) {
	s, ok := arg(args, 0).(string)
	if !ok {
		return 0, 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return 0, addSat(mulSat(uint64(len(s)), 3), StringHeader)
		}
	}
	return 0, uint64(len(s)) + StringHeader
}

// scanFirst is a call that walks its first argument, a string, and
// returns a part of it or a number.
func scanFirst(args []any) (uint64, uint64) {
	s, _ := arg(args, 0).(string)
	return scan(s), 0
}

// splitCost is split and splitAfter: the parts share the string's bytes;
// the slice holding them takes 16 bytes a part.
func splitCost(args []any) (uint64, uint64) {
	s, ok1 := arg(args, 0).(string)
	sep, ok2 := arg(args, 1).(string)
	if !ok1 || !ok2 {
		return 0, 0
	}
	n := uint64(strings.Count(s, sep)) + 1
	if len(args) == 3 {
		if limit, ok := count(arg(args, 2)); ok && limit >= 0 && uint64(limit) < n {
			n = uint64(limit)
		}
	}
	return scan(s), mulSat(n, 16)
}

// elements is a call that walks the elements of its arguments.
func elements(args []any) (uint64, uint64) {
	var n uint64
	for _, a := range args {
		n = addSat(n, length(a))
	}
	return n, 0
}

// length is the number of elements of an array or a map (0 for anything
// else).
func length(v any) uint64 {
	switch a := v.(type) {
	case []any:
		return uint64(len(a))
	case map[string]any:
		return uint64(len(a))
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return uint64(r.Len())
	}
	return 0
}

// count reads a count as runtime.ToInt does, without panicking.
func count(v any) (int, bool) {
	switch f := v.(type) {
	case float64:
		return int(f), true
	case float32:
		return int(f), true
	}
	n, err := toInt(v)
	return n, err == nil
}

// arg is args[i], or nil when there are fewer.
func arg(args []any, i int) any {
	if i < len(args) {
		return args[i]
	}
	return nil
}

func scan(s string) uint64 { return uint64(len(s)) / bytesPerStep }

func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

func mulSat(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// walk sums what formatting a value costs: a step per element, and the
// bytes of the text, at most.
type walk struct{ steps, bytes uint64 }

var durationType = reflect.TypeOf(time.Duration(0))

// format is fmt's %v, which string() uses.
func (w *walk) format(v reflect.Value) {
	w.steps++
	switch v.Kind() {
	case reflect.Invalid:
		w.bytes = addSat(w.bytes, 5) // <nil>
	case reflect.String:
		w.bytes = addSat(w.bytes, uint64(v.Len()))
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			w.bytes = addSat(w.bytes, 5)
			return
		}
		if v.Kind() == reflect.Pointer {
			w.bytes = addSat(w.bytes, 64) // an address, or a Stringer's text (*time.Location)
			return
		}
		w.format(v.Elem())
	case reflect.Slice, reflect.Array:
		w.bytes = addSat(w.bytes, 2)
		for i := 0; i < v.Len(); i++ {
			w.bytes = addSat(w.bytes, 1)
			w.format(v.Index(i))
		}
	case reflect.Map:
		w.bytes = addSat(w.bytes, 5)
		it := v.MapRange()
		for it.Next() {
			w.bytes = addSat(w.bytes, 2)
			w.format(it.Key())
			w.format(it.Value())
		}
	default:
		// numbers, booleans, times, durations and anything else: a
		// time's text is the longest, about 70 bytes
		w.bytes = addSat(w.bytes, 100)
	}
}

// json is encoding/json's MarshalIndent with an indent of two spaces,
// which toJSON uses, at nesting depth d.
func (w *walk) json(v reflect.Value, d uint64) {
	w.steps++
	if v.IsValid() && (v.Type() == timeType || v.Type() == durationType) {
		w.bytes = addSat(w.bytes, 40)
		return
	}
	switch v.Kind() {
	case reflect.Invalid:
		w.bytes = addSat(w.bytes, 4) // null
	case reflect.String:
		w.bytes = addSat(w.bytes, quoted(v.String()))
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			w.bytes = addSat(w.bytes, 4)
			return
		}
		w.json(v.Elem(), d)
	case reflect.Slice, reflect.Array:
		// [\n, then each element on a line of its own, indented, with
		// a comma; the closing bracket indented one level less
		w.bytes = addSat(w.bytes, addSat(3, mulSat(2, d)))
		for i := 0; i < v.Len(); i++ {
			w.bytes = addSat(w.bytes, addSat(mulSat(2, d+1), 2))
			w.json(v.Index(i), d+1)
		}
	case reflect.Map:
		w.bytes = addSat(w.bytes, addSat(3, mulSat(2, d)))
		it := v.MapRange()
		for it.Next() {
			w.bytes = addSat(w.bytes, addSat(mulSat(2, d+1), 4))
			w.json(it.Key(), d+1)
			w.json(it.Value(), d+1)
		}
	default:
		// numbers and booleans: a float64 takes at most 24 bytes
		w.bytes = addSat(w.bytes, 32)
	}
}

// quoted is the length of s as a JSON string, escapes included.
func quoted(s string) uint64 {
	n := uint64(2)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			case c == '"' || c == '\\':
				n += 2
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += uint64(size)
		}
		i += size
	}
	return n
}
