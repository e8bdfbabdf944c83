package config

import (
	"strings"

	"github.com/sluicehq/sluice/runtime/component"
)

// envEdit is one place where expansion changed a string: the raw bytes
// s[raw:raw+rawLen] became the expanded bytes [exp, exp+expLen).
type envEdit struct {
	exp, expLen, raw, rawLen int
}

// expansion maps offsets in an expanded string back to the string as the
// file spells it.
type expansion []envEdit

// rawOffset maps an offset in the expanded string to one in the raw
// string: an offset inside an expanded value is the reference's.
func (x expansion) rawOffset(off int) int {
	delta := 0
	for _, e := range x {
		if off < e.exp {
			break
		}
		if off < e.exp+e.expLen {
			return e.raw
		}
		delta = e.raw + e.rawLen - (e.exp + e.expLen)
	}
	return off + delta
}

// expandEnv replaces ${env:NAME} and ${env:NAME:-default} in s and turns
// $${ into a literal ${. Other ${...} placeholders (templates) are left for
// their owner. Problems are reported at the byte offset of the reference.
// The expansion maps offsets in the result back to s; it is nil when s is
// unchanged.
func expandEnv(s string, lookup func(string) (string, bool), p *component.Problems, path []string) (string, expansion) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var x expansion
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			// The first $ is dropped; "${" maps on as it is.
			x = append(x, envEdit{exp: b.Len(), raw: i, rawLen: 1})
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${env:") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			p.AddAt(path, i, "unterminated environment reference %q (want ${env:NAME} or ${env:NAME:-default})", s[i:])
			return s, nil
		}
		ref := s[i+len("${env:") : i+end]
		at := b.Len()
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			p.AddAt(path, i, "invalid environment variable name %q in %q", name, s[i:i+end+1])
		} else if v, ok := lookup(name); ok {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			p.AddAt(path, i, "environment variable %s is not set (set it, or give a default: ${env:%s:-value})", name, name)
		}
		x = append(x, envEdit{exp: at, expLen: b.Len() - at, raw: i, rawLen: end + 1})
		i += end + 1
	}
	return b.String(), x
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// expansions holds, by path (pathKey), the expansion of each string that
// expansion changed.
type expansions map[string]expansion

// rawOffset maps an offset in the expanded string at path back to the
// string the file holds.
func (xs expansions) rawOffset(path []string, off int) int {
	if x, ok := xs[pathKey(path)]; ok && off >= 0 {
		return x.rawOffset(off)
	}
	return off
}

// expandTree expands environment references in every string of a decoded
// TOML tree, keys excluded, recording in xs how offsets map back.
func expandTree(v any, lookup func(string) (string, bool), p *component.Problems, path []string, xs expansions) any {
	switch t := v.(type) {
	case string:
		s, x := expandEnv(t, lookup, p, path)
		if x != nil {
			xs[pathKey(path)] = x
		}
		return s
	case map[string]any:
		for k, e := range t {
			t[k] = expandTree(e, lookup, p, append(path, k), xs)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = expandTree(e, lookup, p, append(path, component.Index(i)), xs)
		}
		return t
	case []map[string]any:
		for i, e := range t {
			t[i] = expandTree(e, lookup, p, append(path, component.Index(i)), xs).(map[string]any)
		}
		return t
	}
	return v
}
