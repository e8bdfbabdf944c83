package config

import (
	"bytes"
	"encoding/json"
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

// jsonMode says what a string holds, for where an environment value lands
// in it: plain text, JSON text (pattern_json), or a template that is JSON
// when its text starts with { or [.
type jsonMode int

const (
	textMode jsonMode = iota
	jsonStrict
	jsonTemplate
)

// modeOf is the mode of the string at path in the task file's tree.
func modeOf(path []string, s string) jsonMode {
	switch {
	case len(path) == 2 && path[0] == "filter" && path[1] == "pattern_json":
		return jsonStrict
	case len(path) == 3 && path[0] == "transform" && path[2] == "template":
		if t := strings.TrimLeft(s, " \t\r\n"); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			return jsonTemplate
		}
	}
	return textMode
}

// jsonEscape is v escaped for the inside of a JSON string, without quotes.
func jsonEscape(v string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(v) // a string always encodes
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return string(out[1 : len(out)-1])
}

// expandEnv replaces ${env:NAME} and ${env:NAME:-default} in s and turns
// $${ into a literal ${. Other ${...} placeholders (templates) are left for
// their owner. Problems are reported at the byte offset of the reference.
// The expansion maps offsets in the result back to s; it is nil when s is
// unchanged.
//
// A value (or default) is data: in JSON text (mode jsonStrict, or a
// jsonTemplate) one that lands inside a JSON string is escaped for it, so
// a quote, backslash or newline cannot end the string and change the
// structure. In pattern_json one that lands outside a string must be one
// JSON value (a number, true, ...), or it is refused; in a template it is
// text, as a fixed variable's value is there (docs/transforms.md).
//
// A default ends at the first }: it cannot hold a } and cannot hold
// another reference (${env:A:-${env:B}} is refused, not half read).
func expandEnv(s string, lookup func(string) (string, bool), p *component.Problems, path []string, mode jsonMode) (string, expansion) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var x expansion
	inStr, escaped := false, false // JSON lexical state of the raw text
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			// The first $ is dropped; "${" maps on as it is.
			x = append(x, envEdit{exp: b.Len(), raw: i, rawLen: 1})
			b.WriteString("${")
			i += 3
			escaped = false
			continue
		}
		if !strings.HasPrefix(s[i:], "${env:") {
			c := s[i]
			switch {
			case escaped:
				escaped = false
			case inStr && c == '\\':
				escaped = true
			case c == '"':
				inStr = !inStr
			}
			b.WriteByte(c)
			i++
			continue
		}
		escaped = false
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			p.AddAt(path, i, "unterminated environment reference %q (want ${env:NAME} or ${env:NAME:-default})", s[i:])
			return s, nil
		}
		ref := s[i+len("${env:") : i+end]
		at := b.Len()
		name, def, hasDef := strings.Cut(ref, ":-")
		v, ok := "", false
		if !validEnvName(name) {
			p.AddAt(path, i, "invalid environment variable name %q in %q", name, s[i:i+end+1])
		} else if hasDef && strings.Contains(def, "${") {
			p.AddAt(path, i, "the default of ${env:%s} holds another reference %q: a default is plain text and ends at the first }; nested references are not expanded", name, def)
		} else if v, ok = lookup(name); ok {
		} else if hasDef {
			v, ok = def, true
		} else {
			p.AddAt(path, i, "environment variable %s is not set (set it, or give a default: ${env:%s:-value})", name, name)
		}
		if ok {
			switch {
			case mode != textMode && inStr:
				v = jsonEscape(v)
			case mode == jsonStrict && !oneJSONValue(v):
				p.AddAt(path, i, "the value of ${env:%s} lands outside a JSON string in pattern_json, where it must be one JSON value (a number, true, false, null, a quoted string, an array or an object); put the reference inside quotes to match it as a string", name)
				v = ""
			}
			b.WriteString(v)
		}
		x = append(x, envEdit{exp: at, expLen: b.Len() - at, raw: i, rawLen: end + 1})
		i += end + 1
	}
	return b.String(), x
}

// oneJSONValue reports whether v is exactly one JSON value.
func oneJSONValue(v string) bool {
	return strings.TrimSpace(v) != "" && json.Valid([]byte(v))
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
		s, x := expandEnv(t, lookup, p, path, modeOf(path, t))
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
