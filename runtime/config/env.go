package config

import (
	"strings"

	"github.com/sluicehq/sluice/runtime/component"
)

// expandEnv replaces ${env:NAME} and ${env:NAME:-default} in s and turns
// $${ into a literal ${. Other ${...} placeholders (templates) are left for
// their owner. Problems are reported at the byte offset of the reference.
func expandEnv(s string, lookup func(string) (string, bool), p *component.Problems, path []string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
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
			return s
		}
		ref := s[i+len("${env:") : i+end]
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
		i += end + 1
	}
	return b.String()
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

// expandTree expands environment references in every string of a decoded
// TOML tree, keys excluded.
func expandTree(v any, lookup func(string) (string, bool), p *component.Problems, path []string) any {
	switch t := v.(type) {
	case string:
		return expandEnv(t, lookup, p, path)
	case map[string]any:
		for k, e := range t {
			t[k] = expandTree(e, lookup, p, append(path, k))
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = expandTree(e, lookup, p, append(path, component.Index(i)))
		}
		return t
	case []map[string]any:
		for i, e := range t {
			t[i] = expandTree(e, lookup, p, append(path, component.Index(i))).(map[string]any)
		}
		return t
	}
	return v
}
