package component

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Decode fills the config struct cfg points to from a TOML table decoded
// generically (map[string]any as BurntSushi/toml produces it). It reports
// every problem to p instead of stopping at the first: unknown keys (with a
// did-you-mean), wrong types, missing required keys, values outside an enum
// or bounds. skip names keys of tree that belong to the caller (such as
// "type") and are neither decoded nor reported.
func Decode(tree map[string]any, cfg any, p *Problems, skip ...string) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("component.Decode: want pointer to struct, got %T", cfg))
	}
	decodeStruct(tree, v.Elem(), p, nil, skip)
	if val, ok := cfg.(Validator); ok && p != nil {
		val.Validate(p)
	}
}

func decodeStruct(tree map[string]any, v reflect.Value, p *Problems, path []string, skip []string) {
	t := v.Type()
	known := map[string]int{}
	for i := range t.NumField() {
		if name, ok := tomlName(t.Field(i)); ok {
			known[name] = i
		}
	}
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if contains(skip, k) {
			continue
		}
		i, ok := known[k]
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			p.KeyErrorf(append(clone(path), k), "unknown key %q%s", k, Suggest(k, names))
			continue
		}
		decodeValue(tree[k], v.Field(i), p, append(clone(path), k), t.Field(i))
	}
	for name, i := range known {
		sf := t.Field(i)
		if sf.Tag.Get("required") == "true" {
			if _, ok := tree[name]; !ok {
				if len(path) == 0 {
					p.KeyErrorf(nil, "missing required key %q", name)
				} else {
					p.KeyErrorf(clone(path), "missing required key %q", name)
				}
			}
		}
	}
}

func decodeValue(raw any, v reflect.Value, p *Problems, path []string, sf reflect.StructField) {
	if v.Kind() == reflect.Pointer && !isTextType(v.Type()) {
		// Decode into a fresh value and set the pointer only when that
		// worked, so a nil pointer still means "not given" to Validate.
		fresh := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			fresh.Elem().Set(v.Elem())
		}
		before := p.Len()
		decodeValue(raw, fresh.Elem(), p, path, sf)
		if p.Len() == before {
			v.Set(fresh)
		}
		return
	}
	want := typeName(v.Type())
	bad := func() {
		if v.Type() == secretType {
			// A password written without quotes (an integer) must not be
			// quoted back in an error, a reload's answer or a log line,
			// nor shown in the diagnostic's excerpt of the file.
			p.AddSensitivef(path, "expected %s, got %s (the value is not shown: the key holds a secret)", article(want), kindOf(raw))
			return
		}
		p.Addf(path, "expected %s, got %s", article(want), Describe(raw))
	}
	if isTextType(v.Type()) {
		s, ok := raw.(string)
		if !ok {
			bad()
			return
		}
		target := v
		if v.Kind() != reflect.Pointer {
			target = v.Addr()
		} else if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			target = v
		}
		if err := target.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			p.Addf(path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			bad()
			return
		}
		if e := sf.Tag.Get("enum"); e != "" {
			opts := strings.Split(e, ",")
			if !contains(opts, s) {
				p.Addf(path, "invalid value %q: must be one of %s%s", s, strings.Join(quoteAll(opts), ", "), Suggest(s, opts))
				return
			}
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			bad()
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := raw.(int64)
		if !ok {
			bad()
			return
		}
		if v.OverflowInt(n) || !inBounds(float64(n), sf, p, path) {
			if v.OverflowInt(n) {
				p.Addf(path, "value %d is out of range", n)
			}
			return
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := raw.(int64)
		if !ok {
			bad()
			return
		}
		if n < 0 || v.OverflowUint(uint64(n)) {
			p.Addf(path, "value %d is out of range", n)
			return
		}
		if !inBounds(float64(n), sf, p, path) {
			return
		}
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		var f float64
		switch n := raw.(type) {
		case float64:
			f = n
		case int64:
			f = float64(n)
		default:
			bad()
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			p.Addf(path, "value must be a finite number")
			return
		}
		if !inBounds(f, sf, p, path) {
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		items, ok := asList(raw)
		if !ok {
			bad()
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			decodeValue(it, s.Index(i), p, append(clone(path), Index(i)), reflect.StructField{Tag: elemTag(sf)})
		}
		v.Set(s)
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			bad()
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			panic("component.Decode: map keys must be strings")
		}
		out := reflect.MakeMapWithSize(v.Type(), len(m))
		for k, it := range m {
			ev := reflect.New(v.Type().Elem()).Elem()
			decodeValue(it, ev, p, append(clone(path), k), reflect.StructField{Tag: elemTag(sf)})
			out.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), ev)
		}
		v.Set(out)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			bad()
			return
		}
		decodeStruct(m, v, p, path, nil)
		if val, ok := v.Addr().Interface().(Validator); ok {
			val.Validate(p.At(path...))
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(raw))
	default:
		panic(fmt.Sprintf("component.Decode: unsupported field type %s", v.Type()))
	}
}

// elemTag carries an element-level enum ("elem_enum") down to list items.
func elemTag(sf reflect.StructField) reflect.StructTag {
	if e := sf.Tag.Get("elem_enum"); e != "" {
		return reflect.StructTag(`enum:"` + e + `"`)
	}
	return ""
}

func isTextType(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		return t.Implements(textUnmarshaler)
	}
	return reflect.PointerTo(t).Implements(textUnmarshaler)
}

func inBounds(f float64, sf reflect.StructField, p *Problems, path []string) bool {
	if s := sf.Tag.Get("min"); s != "" {
		if lo, err := strconv.ParseFloat(s, 64); err == nil && f < lo {
			p.Addf(path, "value %s is below the minimum %s%s", fmtNum(f), s, rangeHint(sf))
			return false
		}
	}
	if s := sf.Tag.Get("max"); s != "" {
		if hi, err := strconv.ParseFloat(s, 64); err == nil && f > hi {
			p.Addf(path, "value %s is above the maximum %s%s", fmtNum(f), s, rangeHint(sf))
			return false
		}
	}
	return true
}

func rangeHint(sf reflect.StructField) string {
	lo, hi := sf.Tag.Get("min"), sf.Tag.Get("max")
	if lo != "" && hi != "" {
		return " (allowed: " + lo + ".." + hi + ")"
	}
	return ""
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func asList(raw any) ([]any, bool) {
	switch l := raw.(type) {
	case []any:
		return l, true
	case []map[string]any:
		out := make([]any, len(l))
		for i := range l {
			out[i] = l[i]
		}
		return out, true
	}
	return nil, false
}

var secretType = reflect.TypeFor[Secret]()

// kindOf names what kind of TOML value raw is, without its value.
func kindOf(raw any) string {
	switch raw.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	}
	return Describe(raw) // arrays, tables, datetimes, nothing: no value in it
}

// Describe names a decoded TOML value for error messages: `string "x"`,
// `integer 7`, `a table`.
func Describe(raw any) string {
	switch v := raw.(type) {
	case string:
		return fmt.Sprintf("string %q", truncate(v, 40))
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a datetime"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", raw)
}

func article(typ string) string {
	switch {
	case strings.HasPrefix(typ, "list"), strings.HasPrefix(typ, "table"):
		return "a " + typ
	case typ == "int":
		return "an integer"
	case typ == "any":
		return "a value"
	case typ == "duration":
		return "a duration string such as \"2s\""
	case typ == "size":
		return "a size string such as \"64KiB\""
	case typ[0] == 'a' || typ[0] == 'e' || typ[0] == 'i' || typ[0] == 'o' || typ[0] == 'u':
		return "an " + typ
	}
	return "a " + typ
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func clone(s []string) []string { return append([]string(nil), s...) }

// Suggest returns ` (did you mean "x"?)` for the candidate closest to s, or
// "" when none is close enough.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	// Short strings are close to everything: "c" is one edit from "a".
	limit := 2
	switch n := len([]rune(s)); {
	case n <= 2:
		limit = 0
	case n <= 5:
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	// Optimal string alignment distance: insertions, deletions, substitutions
	// and transpositions of neighbours ("timout", "tiemout") each cost 1.
	ra, rb := []rune(a), []rune(b)
	rows := [3][]int{make([]int, len(rb)+1), make([]int, len(rb)+1), make([]int, len(rb)+1)}
	for j := range rows[1] {
		rows[1][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		prev2, prev, cur := rows[0], rows[1], rows[2]
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		rows[0], rows[1], rows[2] = prev, cur, prev2
	}
	return rows[1][len(rb)]
}
