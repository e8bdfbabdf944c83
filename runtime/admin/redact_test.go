package admin

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedactTOML(t *testing.T) {
	raw := `name = "orders"
[source]
type = "kafka"
brokers = ["${env:BROKERS}"]
sasl_password = "hunter2"
token = 'abc'
tls = { cert = "c.pem", private_key = "k.pem" }
[sink]
type = "postgres"
dsn = "postgres://app:s3cret@db:5432/x?sslmode=disable"
cache = "redis://:onlypass@cache:6379/0"
hook = "https://app:pa@ss-tail@api.example.com/hook?q=1"
site = "http://host:8080/path"
url = "https://api/${env:API_TOKEN:-dflt}/x"
api_key=plain
tokens = ["tok-one", "tok-two"]
password = """multi
line-secret"""
private_key = '''pem-secret'''
topic = "tokens" # a value that merely mentions a token stays
`
	got := RedactTOML(raw)
	for _, secret := range []string{"BROKERS", "hunter2", "abc", "k.pem", "s3cret", "API_TOKEN", "dflt", "plain", "line-secret", "multi", "pem-secret", "tok-one", "tok-two", "onlypass", "ss-tail"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q shows through:\n%s", secret, got)
		}
	}
	for _, kept := range []string{`name = "orders"`, `type = "kafka"`, `cert = "c.pem"`, `topic = "tokens"`, "postgres://app:***@db:5432", "redis://:***@cache:6379/0", "https://app:***@api.example.com/hook?q=1", `site = "http://host:8080/path"`, `sasl_password = "***"`, `brokers = ["***"]`} {
		if !strings.Contains(got, kept) {
			t.Errorf("want %q kept in:\n%s", kept, got)
		}
	}
}

// Keys a component's spec marks secret are masked whatever their names.
func TestRedactTOMLSpecKeys(t *testing.T) {
	got := RedactTOML("[sink]\ntype = \"x\"\nsigning = \"abc123\"\nheaders = { signing = 'k' }\nname_signing = \"kept\"\n", "signing")
	if strings.Contains(got, "abc123") || strings.Contains(got, "'k'") || !strings.Contains(got, `name_signing = "kept"`) {
		t.Fatalf("%s", got)
	}
}

// TestRedactTOMLNestedSecrets: a key that names a secret masks all it
// holds, whatever the TOML form: an inline table, a table whose header
// names a secret, a dotted key through a secret name, and a header name
// such as X-Api-Key. Before, `credentials = { key = "x" }` showed "x": only
// the opening brace was masked.
func TestRedactTOMLNestedSecrets(t *testing.T) {
	raw := `name = "orders"
[source]
type = "kafka"
credentials = { user = "u1", key = "inline-secret" }
auth = { nested = { deep = "deep-secret" } }
secrets = [ { k = "array-secret" }, "x]y-secret" ]
credentials.key = "dotted-secret"
"api_key" = "quoted-key-secret"
tls = { cert = "c.pem", private_key = "k.pem" } # was: password = "commented-secret"
[sink]
type = "http"
url = "https://hooks.example.com/x"
headers = { "X-Api-Key" = "header-secret", "Content-Type" = "application/json" }
[sink.credentials]
key = "table-secret"
other = { a = "table-inline-secret" }
[[transform]]
type = "template"
value = '{"tokens":"kept-value"}'
signing = { k = "spec-secret" }
`
	got := RedactTOML(raw, "signing")
	for _, secret := range []string{"inline-secret", "deep-secret", "array-secret", "x]y-secret", "dotted-secret", "quoted-key-secret", "k.pem", "commented-secret", "header-secret", "table-secret", "table-inline-secret", "spec-secret"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q shows through:\n%s", secret, got)
		}
	}
	for _, kept := range []string{`name = "orders"`, `type = "kafka"`, `cert = "c.pem"`, `"Content-Type" = "application/json"`, `url = "https://hooks.example.com/x"`, `[sink.credentials]`, `type = "template"`, `value = '{"tokens":"kept-value"}'`, "# was: password = "} {
		if !strings.Contains(got, kept) {
			t.Errorf("want %q kept in:\n%s", kept, got)
		}
	}
}

// TestRedactTOMLInvalidFile: the file is re-read at each request and may
// no longer parse (an edit in progress). What does not parse is hidden,
// from the line after the last value read to the line of the error, and
// the rest is shown with its secrets masked.
func TestRedactTOMLInvalidFile(t *testing.T) {
	raw := `name = "orders"
password = """open-secret
still-open-secret
[sink
key = "after-broken-header"
[other]
type = "kept"
token = "later-secret"
`
	got := RedactTOML(raw)
	for _, secret := range []string{"open-secret", "still-open-secret", "after-broken-header", "later-secret"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q shows through:\n%s", secret, got)
		}
	}
	for _, kept := range []string{`name = "orders"`, "# (not shown: line 2 is not valid TOML)"} {
		if !strings.Contains(got, kept) {
			t.Errorf("want %q kept in:\n%s", kept, got)
		}
	}
	// A header that does not parse may have named a secret table: until
	// the next header, its values are masked.
	got = RedactTOML("[sink.credentials\nkey = \"k-secret\"\n[sink]\ntype = \"http\"\n")
	if strings.Contains(got, "k-secret") || !strings.Contains(got, `type = "http"`) {
		t.Errorf("after a broken header:\n%s", got)
	}
}

var specKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func FuzzRedactTOML(f *testing.F) {
	f.Add("a = 1\npassword = \"x\"\n", "signing")
	f.Add("credentials = { key = \"x\" }\n[t.auth]\nk = 'v' # token = \"c\"\n", "")
	f.Add("p = \"\"\"\nx\n[a\nb = 1\n", "")
	f.Fuzz(func(t *testing.T, raw, named string) {
		if !specKey.MatchString(named) {
			named = "signing" // spec keys are Go field tags: plain names
		}
		// Any text, valid TOML or not, is shown without a panic or a
		// hang, and a literal password value never shows.
		got := RedactTOML(raw+"\npassword = \"pw-9f3k\"\n", named)
		if strings.Contains(got, "pw-9f3k") {
			t.Fatalf("the password shows: %q", got)
		}
	})
}

// An error's text may quote a URL with its password (a client library
// naming what it failed to reach): the task view's reason and errors and
// a dead letter's reason show it masked.
func TestRedactTextMasksURLPasswords(t *testing.T) {
	got := RedactText(`dial "nats://app:s3cret@nats:4222": refused; redis://:onlypass@cache:6379 too`)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "onlypass") || !strings.Contains(got, "nats://app:***@nats:4222") {
		t.Fatalf("%s", got)
	}
}
