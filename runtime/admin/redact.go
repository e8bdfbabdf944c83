package admin

import (
	"regexp"
	"strings"
)

// valueRE is a TOML value: a multi-line string, a basic or literal string,
// or a bare value up to a separator. It serves comments only: the values of
// the file itself are read by the scanner below.
const valueRE = `("{3}[\s\S]*?"{3}|'{3}[\s\S]*?'{3}|"(?:[^"\\]|\\.)*"|'[^']*'|\[[^\]]*\]|[^\s,}#]+)`

// secretWords are what a key's name holds when it names a secret.
const secretWords = `password|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?|access[_-]?key|auth`

// The task file as the API shows it never holds a secret: the text is the
// file as written (never the values the environment filled in), and what
// the file itself may hold is masked too.
var (
	// ${env:NAME} and ${env:NAME:-default}: the reference stays out (a
	// default may be a secret, and the console has no use for it).
	envRef = regexp.MustCompile(`\$\{env:[^}]*\}`)
	// secretName is a key (one part of a dotted key or of a table's name)
	// that names a secret: password, sasl_password, api_key, X-Api-Key ...
	secretName = regexp.MustCompile(`(?i)` + secretWords)
	// A key = value that names a secret inside a comment (a line
	// commented out may still hold a secret).
	secretKV = regexp.MustCompile(`(?i)((?:^|[\s{,.#])"?[a-z0-9_-]*(?:` + secretWords + `)[a-z0-9_-]*"?\s*=\s*)` + valueRE)
	// The password of a URL: scheme://user:PASSWORD@host. The user may be
	// empty (redis://:PASSWORD@host), and the password ends at the last
	// '@' of the authority, as url.Parse reads it: it may hold '@'.
	urlPassword = regexp.MustCompile(`(://[^:/@\s"']*:)[^/?#\s"']*@`)
)

// RedactTOML masks the secrets of a task file's text with ***: every
// ${env:...} reference, the value of every key that names a secret
// (password, token, secret, api_key, credentials, auth ...) and the
// password of URLs (scheme://user:***@host). A secret key masks all its
// value holds: an inline table or an array becomes "***" as a whole, and
// every value of a table whose name has a secret part ([sink.credentials])
// or of a dotted key through one (credentials.key) is masked. It works on
// the text, so comments and layout stay as written.
//
// secretKeys are more key names to mask: the keys the components' specs
// mark secret (component.Secret fields), whatever their names.
func RedactTOML(raw string, secretKeys ...string) string {
	s := envRef.ReplaceAllString(raw, "***")
	r := &redactor{src: s, named: secretKeys}
	if len(secretKeys) > 0 {
		quoted := make([]string, len(secretKeys))
		for i, k := range secretKeys {
			quoted[i] = regexp.QuoteMeta(k)
		}
		r.namedKV = regexp.MustCompile(`((?:^|[\s{,.#])"?(?:` + strings.Join(quoted, "|") + `)"?\s*=\s*)` + valueRE)
	}
	r.document()
	return urlPassword.ReplaceAllString(r.String(), `$1***@`)
}

// redactor copies src, masking the values of secret keys. It reads TOML
// loosely: the file loaded once, but it is read again at each request and
// may have changed since, so anything it does not understand is copied up
// to the end of its line and reading goes on.
type redactor struct {
	src     string
	named   []string
	namedKV *regexp.Regexp
	out     strings.Builder
	last    int // src is copied to out up to here
}

func (r *redactor) String() string {
	r.out.WriteString(r.src[r.last:])
	r.last = len(r.src)
	return r.out.String()
}

// replace writes src[a:b] as with.
func (r *redactor) replace(a, b int, with string) {
	r.out.WriteString(r.src[r.last:a])
	r.out.WriteString(with)
	r.last = b
}

func (r *redactor) isSecret(key string) bool {
	if secretName.MatchString(key) {
		return true
	}
	for _, k := range r.named {
		if key == k {
			return true
		}
	}
	return false
}

// document reads the file: table headers, key = value lines, comments.
func (r *redactor) document() {
	s := r.src
	tableSecret := false
	for i := 0; i < len(s); {
		i = skipSpace(s, i, true)
		if i >= len(s) {
			return
		}
		switch s[i] {
		case '#':
			i = r.comment(i)
		case '[':
			j := i + 1
			if j < len(s) && s[j] == '[' {
				j++
			}
			keys, end, ok := r.keyPath(j)
			if !ok || end >= len(s) || s[end] != ']' {
				i = lineEnd(s, i)
				continue
			}
			tableSecret = r.anySecret(keys)
			i = end + 1
			if i < len(s) && s[i] == ']' {
				i++
			}
		default:
			end, ok := r.keyValue(i, tableSecret, true)
			if !ok {
				end = lineEnd(s, i)
			}
			i = end
		}
	}
}

// comment masks what a comment from i holds and returns its end.
func (r *redactor) comment(i int) int {
	end := lineEnd(r.src, i)
	c := secretKV.ReplaceAllString(r.src[i:end], `$1"***"`)
	if r.namedKV != nil {
		c = r.namedKV.ReplaceAllString(c, `$1"***"`)
	}
	if c != r.src[i:end] {
		r.replace(i, end, c)
	}
	return end
}

func (r *redactor) anySecret(keys []string) bool {
	for _, k := range keys {
		if r.isSecret(k) {
			return true
		}
	}
	return false
}

// keyPath reads a dotted key from i (bare or quoted parts) and returns its
// parts and where it ends (at the '=' or ']' after it).
func (r *redactor) keyPath(i int) (keys []string, end int, ok bool) {
	s := r.src
	for {
		i = skipSpace(s, i, false)
		if i >= len(s) {
			return nil, i, false
		}
		var k string
		switch c := s[i]; {
		case c == '"' || c == '\'':
			e := stringEnd(s, i)
			if e-i < 2 {
				return nil, i, false
			}
			k, i = s[i+1:e-1], e
		case isBareKey(c):
			j := i
			for j < len(s) && isBareKey(s[j]) {
				j++
			}
			k, i = s[i:j], j
		default:
			return nil, i, false
		}
		keys = append(keys, k)
		i = skipSpace(s, i, false)
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		return keys, i, true
	}
}

// keyValue reads key = value from i, masking the value when a part of the
// key names a secret (or inSecret: the table's name has one). It returns
// where the value ends. Nothing is written unless emit.
func (r *redactor) keyValue(i int, inSecret, emit bool) (int, bool) {
	s := r.src
	keys, end, ok := r.keyPath(i)
	if !ok || end >= len(s) || s[end] != '=' {
		return i, false
	}
	v := skipSpace(s, end+1, false)
	secret := inSecret || r.anySecret(keys)
	if secret && emit {
		e := r.value(v, false)
		if e > v {
			r.replace(v, e, `"***"`)
		}
		return e, true
	}
	return r.value(v, emit), true
}

// value reads the value at i and returns its end. In an inline table or an
// array, it masks the values of secret keys (when emit).
func (r *redactor) value(i int, emit bool) int {
	s := r.src
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"', '\'':
		return stringEnd(s, i)
	case '[':
		j := i + 1
		for j < len(s) {
			j = skipSpace(s, j, true)
			if j >= len(s) {
				return j
			}
			switch s[j] {
			case ']':
				return j + 1
			case ',':
				j++
			case '#':
				j = r.comment(j)
			default:
				if e := r.value(j, emit); e > j {
					j = e
				} else {
					j++
				}
			}
		}
		return j
	case '{':
		j := i + 1
		for j < len(s) {
			j = skipSpace(s, j, true)
			if j >= len(s) {
				return j
			}
			switch s[j] {
			case '}':
				return j + 1
			case ',':
				j++
			case '#':
				j = r.comment(j)
			default:
				if e, ok := r.keyValue(j, false, emit); ok && e > j {
					j = e
				} else {
					j++
				}
			}
		}
		return j
	}
	j := i
	for j < len(s) && !strings.ContainsRune(" \t\r\n,]}#", rune(s[j])) {
		j++
	}
	return j
}

// stringEnd returns the end of the TOML string starting at i: basic or
// literal, on one line or several. An unterminated one ends at its line
// (or the file) end.
func stringEnd(s string, i int) int {
	q := s[i]
	if strings.HasPrefix(s[i:], strings.Repeat(string(q), 3)) {
		delim := s[i : i+3]
		for j := i + 3; j < len(s); j++ {
			if q == '"' && s[j] == '\\' {
				j++
				continue
			}
			if strings.HasPrefix(s[j:], delim) {
				end := j + 3
				// Up to two more quotes belong to the content.
				for k := 0; k < 2 && end < len(s) && s[end] == q; k++ {
					end++
				}
				return end
			}
		}
		return len(s)
	}
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\n':
			return j
		case q == '"' && s[j] == '\\':
			j++
		case s[j] == q:
			return j + 1
		}
	}
	return len(s)
}

func isBareKey(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// skipSpace skips blanks (and line ends when nl) from i.
func skipSpace(s string, i int, nl bool) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || nl && (s[i] == '\n' || s[i] == '\r')) {
		i++
	}
	return i
}

func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(s)
}
