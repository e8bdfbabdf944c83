package admin

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// valueRE is a TOML value as it may be written in a comment: a multi-line
// string, a basic or literal string, or a bare value up to a separator.
// The file's own values are found by go-toml's parser.
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
// password of URLs (scheme://user:***@host). A secret key masks every value
// it holds, in an inline table or an array too, and so does a table whose
// name has a secret part ([sink.credentials]) or a dotted key through one
// (credentials.key). Comments and layout stay as written; a secret in a
// comment (a line commented out) is masked too.
//
// The file is read with go-toml's parser. The text is re-read at each
// request and may have changed since it was loaded: what does not parse
// is not shown (the parser cannot tell what is a secret there), and the
// rest is.
//
// secretKeys are more key names to mask: the keys the components' specs
// mark secret (component.Secret fields), whatever their names.
func RedactTOML(raw string, secretKeys ...string) string {
	r := redactor{src: envRef.ReplaceAllString(raw, "***"), named: secretKeys}
	if len(secretKeys) > 0 {
		quoted := make([]string, len(secretKeys))
		for i, k := range secretKeys {
			quoted[i] = regexp.QuoteMeta(k)
		}
		r.namedKV = regexp.MustCompile(`((?:^|[\s{,.#])"?(?:` + strings.Join(quoted, "|") + `)"?\s*=\s*)` + valueRE)
	}
	return urlPassword.ReplaceAllString(r.redact(), `$1***@`)
}

// RedactText masks the passwords of URLs in an error's text (the reason a
// task stopped, its recent errors, a dead letter's reason): a client
// library may quote the URL it was given, user and password included.
func RedactText(s string) string {
	return urlPassword.ReplaceAllString(s, `$1***@`)
}

// span is a byte range of the text.
type span struct{ from, to int }

type redactor struct {
	src     string
	named   []string
	namedKV *regexp.Regexp
	secrets []span // values to show as "***"
	syntax  []span // keys and values: a '#' in them starts no comment
	hidden  []span // what does not parse
	base    int    // where the parser started reading
}

func (r *redactor) redact() string {
	data := []byte(r.src)
	tableSecret := false
	for r.base < len(data) {
		var p unstable.Parser
		p.Reset(data[r.base:])
		for p.NextExpression() {
			e := p.Expression()
			switch e.Kind {
			case unstable.Table, unstable.ArrayTable:
				tableSecret = r.key(e)
			case unstable.KeyValue:
				r.keyValue(e, tableSecret)
			}
		}
		if p.Error() == nil {
			break
		}
		// Not valid TOML (the file changed since it was loaded): what
		// the parser could not read is hidden, from the line after the
		// last expression read to the end of the line of the error, and
		// reading goes on after it.
		off := len(data) - r.base
		if err, ok := p.Error().(*unstable.ParserError); ok && len(err.Highlight) > 0 {
			off = int(p.Range(err.Highlight).Offset)
		}
		from := r.base
		if n := len(r.syntax); n > 0 && r.syntax[n-1].to > from {
			from = r.syntax[n-1].to
			from += strings.IndexByte(r.src[from:], '\n') + 1
		}
		to := r.base + off
		if i := strings.IndexByte(r.src[to:], '\n'); i >= 0 {
			to += i + 1
		} else {
			to = len(r.src)
		}
		r.hidden = append(r.hidden, span{from, to})
		if strings.Contains("\n"+r.src[from:to], "\n[") {
			// A table header may be in it: until the next one, every
			// value is taken for a secret.
			tableSecret = true
		}
		r.base = to
	}
	sort.Slice(r.secrets, func(i, j int) bool { return r.secrets[i].from < r.secrets[j].from })
	sort.Slice(r.syntax, func(i, j int) bool { return r.syntax[i].from < r.syntax[j].from })
	var out strings.Builder
	out.Grow(len(r.src))
	last, sec, syn, hid := 0, 0, 0, 0
	end := len(r.src)
	for i := 0; i < end; i++ {
		if hid < len(r.hidden) && r.hidden[hid].from == i {
			h := r.hidden[hid]
			out.WriteString(r.src[last:i])
			out.WriteString("# (not shown: line " + strconv.Itoa(strings.Count(r.src[:h.from], "\n")+1) + " is not valid TOML)\n")
			for sec < len(r.secrets) && r.secrets[sec].from < h.to {
				sec++
			}
			i, last = h.to-1, h.to
			hid++
			continue
		}
		if sec < len(r.secrets) && r.secrets[sec].from == i {
			out.WriteString(r.src[last:i])
			out.WriteString(`"***"`)
			i = r.secrets[sec].to - 1
			last = r.secrets[sec].to
			sec++
			continue
		}
		for syn < len(r.syntax) && r.syntax[syn].to <= i {
			syn++
		}
		if r.src[i] != '#' || (syn < len(r.syntax) && r.syntax[syn].from <= i) {
			continue
		}
		// A comment, to the end of its line.
		j := strings.IndexByte(r.src[i:end], '\n')
		if j < 0 {
			j = end - i
		}
		out.WriteString(r.src[last:i])
		out.WriteString(r.comment(r.src[i : i+j]))
		last = i + j
		i += j - 1
	}
	out.WriteString(r.src[last:end])
	return out.String()
}

// key notes where a table header's or key's parts are and reports whether
// one of them names a secret.
func (r *redactor) key(n *unstable.Node) bool {
	secret := false
	it := n.Key()
	for it.Next() {
		k := it.Node()
		r.syntax = append(r.syntax, r.span(k))
		secret = secret || r.isSecret(string(k.Data))
	}
	return secret
}

// keyValue notes a key = value; secret: it is in a secret's table.
func (r *redactor) keyValue(kv *unstable.Node, secret bool) {
	secret = r.key(kv) || secret
	r.value(kv.Value(), secret)
}

// value notes the scalars of v, as secrets when secret is set.
func (r *redactor) value(v *unstable.Node, secret bool) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				r.keyValue(c, secret)
			}
		}
	case unstable.Array:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind != unstable.Comment {
				r.value(c, secret)
			}
		}
	default:
		s := r.span(v)
		if s.to <= s.from {
			return
		}
		r.syntax = append(r.syntax, s)
		if secret {
			r.secrets = append(r.secrets, s)
		}
	}
}

// span is where n is in the text.
func (r *redactor) span(n *unstable.Node) span {
	return span{r.base + int(n.Raw.Offset), r.base + int(n.Raw.Offset+n.Raw.Length)}
}

// comment masks what looks like a secret key = value in a comment.
func (r *redactor) comment(c string) string {
	c = secretKV.ReplaceAllString(c, `$1"***"`)
	if r.namedKV != nil {
		c = r.namedKV.ReplaceAllString(c, `$1"***"`)
	}
	return c
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
