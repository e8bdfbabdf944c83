package pattern

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// This file is the reference matcher the fuzzer checks the fast one
// against. It is written for obviousness, not speed: the pattern and the
// event are decoded with encoding/json, $or is multiplied out into
// separate conjunctive terms, and the string operators go through regexp
// instead of hand-written loops.

func decodeUseNumber(text []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if dec.More() {
		return nil, false
	}
	if _, err := dec.Token(); err == nil {
		return nil, false
	}
	return v, true
}

// refCond is one leaf of a conjunctive term: the path from the level it
// belongs to, and the leaf array.
type refCond struct {
	path     []string
	matchers []any
}

// refTerms multiplies the pattern out into conjunctive terms.
func refTerms(p map[string]any) [][]refCond {
	terms := [][]refCond{{}}
	for k, v := range p {
		var alts [][]refCond
		switch t := v.(type) {
		case map[string]any:
			for _, term := range refTerms(t) {
				var prefixed []refCond
				for _, c := range term {
					prefixed = append(prefixed, refCond{append([]string{k}, c.path...), c.matchers})
				}
				alts = append(alts, prefixed)
			}
		case []any:
			if k == "$or" {
				for _, b := range t {
					alts = append(alts, refTerms(b.(map[string]any))...)
				}
			} else {
				alts = [][]refCond{{{[]string{k}, t}}}
			}
		}
		var next [][]refCond
		for _, a := range terms {
			for _, b := range alts {
				next = append(next, append(append([]refCond{}, a...), b...))
			}
		}
		terms = next
	}
	return terms
}

// refMatch matches a decoded event against a pattern given as JSON text.
func refMatch(pattern []byte, event any) bool {
	terms, ok := termCache.Load(string(pattern))
	if !ok {
		p, _ := decodeUseNumber(pattern)
		pm := p.(map[string]any)
		var t [][]refCond
		if len(pm) > 0 {
			t = refTerms(pm)
		}
		terms, _ = termCache.LoadOrStore(string(pattern), t)
	}
	if terms.([][]refCond) == nil {
		return true // the empty pattern
	}
	for _, term := range terms.([][]refCond) {
		if refConj(term, event, true) {
			return true
		}
	}
	return false
}

func flatten(v []any, out []any) []any {
	for _, e := range v {
		if a, ok := e.([]any); ok {
			out = flatten(a, out)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// refConj: do all conditions hold on v, with fields under one array
// coming from one element?
func refConj(conds []refCond, v any, present bool) bool {
	if !present {
		for _, c := range conds {
			if !refLeaf(c.matchers, nil, false) {
				return false
			}
		}
		return true
	}
	switch t := v.(type) {
	case []any: // some element (an object: see default) satisfies them
		for _, e := range flatten(t, nil) {
			if refConj(conds, e, true) {
				return true
			}
		}
		return false
	case map[string]any:
		groups := map[string][]refCond{}
		for _, c := range conds {
			if len(c.path) == 1 {
				val, ok := t[c.path[0]]
				if !refLeaf(c.matchers, val, ok) {
					return false
				}
				continue
			}
			groups[c.path[0]] = append(groups[c.path[0]], refCond{c.path[1:], c.matchers})
		}
		for k, g := range groups {
			val, ok := t[k]
			if !refConj(g, val, ok) {
				return false
			}
		}
		return true
	default: // a pattern object never matches a scalar
		return false
	}
}

func refLeaf(matchers []any, v any, present bool) bool {
	var leaves []any
	if present {
		switch t := v.(type) {
		case map[string]any:
		case []any:
			for _, e := range flatten(t, nil) {
				if _, isObj := e.(map[string]any); !isObj {
					leaves = append(leaves, e)
				}
			}
		default:
			leaves = []any{v}
		}
	}
	for _, m := range matchers {
		if op, ok := m.(map[string]any); ok {
			if ex, ok := op["exists"]; ok {
				if ex.(bool) == (len(leaves) > 0) {
					return true
				}
				continue
			}
		}
		for _, l := range leaves {
			if refOp(m, l) {
				return true
			}
		}
	}
	return false
}

func refNum(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

// refEqual is typed equality of a literal and a leaf.
func refEqual(lit, leaf any) bool {
	if _, ok := lit.(json.Number); ok {
		a, _ := refNum(lit)
		b, ok := refNum(leaf)
		return ok && a == b
	}
	if _, ok := leaf.(json.Number); ok {
		return false
	}
	return lit == leaf
}

var reCache, termCache sync.Map

func reMatch(expr string, s string) bool {
	re, ok := reCache.Load(expr)
	if !ok {
		re, _ = reCache.LoadOrStore(expr, regexp.MustCompile(expr))
	}
	return re.(*regexp.Regexp).MatchString(s)
}

func wildcardRegexp(w string) string {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case '*':
			b.WriteString(`.*`)
		case '\\':
			i++
			b.WriteString(regexp.QuoteMeta(w[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(w[i : i+1]))
		}
	}
	b.WriteString(`$`)
	return b.String()
}

// refStringOp applies prefix/suffix/equals-ignore-case/wildcard/contains
// with a string operand (or the {"equals-ignore-case": s} forms).
func refStringOp(name string, arg any, s string) bool {
	if o, ok := arg.(map[string]any); ok {
		op := o["equals-ignore-case"].(string)
		switch name {
		case "prefix":
			return reMatch(`(?is)^`+regexp.QuoteMeta(op), s)
		case "suffix":
			return reMatch(`(?is)`+regexp.QuoteMeta(op)+`$`, s)
		}
		return false
	}
	op := arg.(string)
	switch name {
	case "prefix":
		return reMatch(`(?s)^`+regexp.QuoteMeta(op), s)
	case "suffix":
		return reMatch(`(?s)`+regexp.QuoteMeta(op)+`$`, s)
	case "contains":
		return reMatch(regexp.QuoteMeta(op), s)
	case "equals-ignore-case":
		return reMatch(`(?is)^`+regexp.QuoteMeta(op)+`$`, s)
	case "wildcard":
		return reMatch(wildcardRegexp(op), s)
	}
	return false
}

func refOp(m any, leaf any) bool {
	op, ok := m.(map[string]any)
	if !ok {
		return refEqual(m, leaf)
	}
	for name, arg := range op {
		s, isStr := leaf.(string)
		switch name {
		case "prefix", "suffix", "contains", "equals-ignore-case", "wildcard":
			return isStr && refStringOp(name, arg, s)
		case "numeric":
			f, ok := refNum(leaf)
			if !ok {
				return false
			}
			a := arg.([]any)
			for i := 0; i < len(a); i += 2 {
				n, _ := refNum(a[i+1])
				var hold bool
				switch a[i].(string) {
				case "=":
					hold = f == n
				case "!=":
					hold = f != n
				case "<":
					hold = f < n
				case "<=":
					hold = f <= n
				case ">":
					hold = f > n
				case ">=":
					hold = f >= n
				}
				if !hold {
					return false
				}
			}
			return true
		case "cidr":
			if !isStr || strings.Contains(s, "%") {
				return false
			}
			pfx, err := netip.ParsePrefix(arg.(string))
			if err != nil {
				a, err := netip.ParseAddr(arg.(string))
				if err != nil {
					return false
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			a, err := netip.ParseAddr(s)
			return err == nil && pfx.Masked().Contains(a)
		case "anything-but":
			if _, isNum := leaf.(json.Number); isNum {
				if _, ok := refNum(leaf); !ok {
					return false // an unusable number matches nothing
				}
			}
			switch a := arg.(type) {
			case map[string]any:
				if !isStr {
					return true
				}
				for form, operand := range a {
					ops, isList := operand.([]any)
					if !isList {
						ops = []any{operand}
					}
					for _, o := range ops {
						if refStringOp(form, o, s) {
							return false
						}
					}
				}
				return true
			case []any:
				for _, x := range a {
					if refEqual(x, leaf) {
						return false
					}
				}
				return true
			default:
				return !refEqual(a, leaf)
			}
		}
	}
	return false
}
