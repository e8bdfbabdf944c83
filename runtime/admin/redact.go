package admin

import (
	"regexp"
	"strings"
)

// valueRE is a TOML value: a multi-line string, a basic or literal string,
// or a bare value up to a separator.
const valueRE = `("{3}[\s\S]*?"{3}|'{3}[\s\S]*?'{3}|"(?:[^"\\]|\\.)*"|'[^']*'|\[[^\]]*\]|[^\s,}#]+)`

// The task file as the API shows it never holds a secret: the text is the
// file as written (never the values the environment filled in), and what
// the file itself may hold is masked too.
var (
	// ${env:NAME} and ${env:NAME:-default}: the reference stays out (a
	// default may be a secret, and the console has no use for it).
	envRef = regexp.MustCompile(`\$\{env:[^}]*\}`)
	// A value whose key names a secret (password, token, sasl_password,
	// api_key, ...), as key = "..." or key = '...', also inside inline
	// tables.
	secretKV = regexp.MustCompile(`(?i)((?:^|[\s{,.])"?[a-z0-9_-]*(?:password|passwd|secret|token|api_?key|private_?key|credentials?|access_?key|auth)[a-z0-9_-]*"?\s*=\s*)` + valueRE)
	// The password of a URL: scheme://user:PASSWORD@host. The user may be
	// empty (redis://:PASSWORD@host), and the password ends at the last
	// '@' of the authority, as url.Parse reads it: it may hold '@'.
	urlPassword = regexp.MustCompile(`(://[^:/@\s"']*:)[^/?#\s"']*@`)
)

// RedactTOML masks the secrets of a task file's text with ***: every
// ${env:...} reference, the value of every key that names a secret
// (password, token, secret, api_key, credentials, auth ...) and the
// password of URLs (scheme://user:***@host). It works on the text, so
// comments and layout stay as written.
//
// secretKeys are more key names to mask: the keys the components' specs
// mark secret (component.Secret fields), whatever their names.
func RedactTOML(raw string, secretKeys ...string) string {
	s := envRef.ReplaceAllString(raw, "***")
	s = secretKV.ReplaceAllString(s, `$1"***"`)
	if len(secretKeys) > 0 {
		quoted := make([]string, len(secretKeys))
		for i, k := range secretKeys {
			quoted[i] = regexp.QuoteMeta(k)
		}
		named := regexp.MustCompile(`((?:^|[\s{,.])"?(?:` + strings.Join(quoted, "|") + `)"?\s*=\s*)` + valueRE)
		s = named.ReplaceAllString(s, `$1"***"`)
	}
	return urlPassword.ReplaceAllString(s, `$1***@`)
}
