// Package http is the `http` webhook sink: it posts batches of records to
// a URL as NDJSON (default), as a JSON array, or one request per record,
// and maps the answers to the component error classes (docs/delivery.md,
// "Stages and error classes"). docs/connectors/http.md is the user reference.
package http

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Formats of the request body.
const (
	FormatNDJSON    = "ndjson"
	FormatJSONArray = "json_array"
	FormatSingle    = "single"
)

// Config is the [sink] table of `type = "http"`.
type Config struct {
	URL         string             `toml:"url" required:"true" doc:"Where to send records: an http:// or https:// URL. Credentials in it (user:password@) are sent as basic auth and never shown in messages."`
	Method      string             `toml:"method" enum:"POST,PUT,PATCH" doc:"HTTP method of each request."`
	Headers     map[string]string  `toml:"headers" doc:"Extra request headers, e.g. { \"X-Api-Key\" = \"${env:HOOK_KEY}\" }. A Content-Type here replaces the one the format implies."`
	Token       Secret             `toml:"token" doc:"Bearer token sent as \"Authorization: Bearer TOKEN\". Write it as \"${env:VAR}\"; it is never logged."`
	Format      string             `toml:"format" enum:"ndjson,json_array,single" doc:"Body of a request: ndjson (each payload on its own line, JSON compacted; a non-JSON payload holding a newline goes to the dead-letter queue), json_array ([p1,p2,...]; a non-JSON payload becomes a JSON string), single (one request per record, the payload as it is)."`
	Timeout     component.Duration `toml:"timeout" doc:"Longest time for one request, from sending it to reading the answer (waiting for a max_in_flight slot is not counted). A timeout is retried on the task's retry policy."`
	Batch       Batch              `toml:"batch" doc:"How many records go into one Write. The task gathers up to max_events records or waits max_wait, whichever comes first; the sink splits a Write into several requests to keep each body within max_bytes."`
	MaxInFlight int                `toml:"max_in_flight" min:"1" max:"1024" doc:"Requests this sink has open at once, across the task's workers."`
	TLS         *TLS               `toml:"tls" doc:"TLS settings for https:// URLs (the system roots are trusted without this table)."`
}

// Batch is the `batch` table.
type Batch struct {
	MaxEvents int                `toml:"max_events" min:"1" max:"1000000" doc:"Most records in one Write."`
	MaxBytes  component.ByteSize `toml:"max_bytes" doc:"Largest request body the sink builds from several records; a Write over it becomes several requests, in order. A single record larger than this is sent alone."`
	MaxWait   component.Duration `toml:"max_wait" doc:"Longest time the task holds a partial batch before writing it."`
}

// TLS is the `tls` table of the sink.
type TLS = tlsconf.Client

// Defaults.
const (
	defaultTimeout     = 30 * time.Second
	defaultMaxEvents   = 100
	defaultMaxBytes    = 1 << 20 // nginx's default client_max_body_size
	defaultMaxWait     = time.Second
	defaultMaxInFlight = 8
)

func newConfig() any {
	return &Config{
		Method:      http.MethodPost,
		Format:      FormatNDJSON,
		Timeout:     component.Duration(defaultTimeout),
		Batch:       Batch{MaxEvents: defaultMaxEvents, MaxBytes: defaultMaxBytes, MaxWait: component.Duration(defaultMaxWait)},
		MaxInFlight: defaultMaxInFlight,
	}
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	if c.URL != "" {
		if _, err := parseURL(c.URL); err != nil {
			p.AddSensitivef([]string{"url"}, "%v", err)
		}
	}
	if c.Timeout <= 0 {
		p.Addf([]string{"timeout"}, "must be positive (e.g. \"30s\")")
	}
	if c.Batch.MaxBytes <= 0 {
		p.Addf([]string{"batch", "max_bytes"}, "must be positive (e.g. \"1MiB\")")
	}
	for name, v := range c.Headers {
		path := []string{"headers", name}
		switch {
		case !validHeaderName(name):
			p.KeyErrorf(path, "invalid header name %q: use letters, digits and !#$%%&'*+-.^_`|~", name)
		case strings.ContainsAny(v, "\r\n\x00"):
			p.Addf(path, "header value must not hold CR, LF or NUL")
		case !validHeaderValue(v):
			p.Addf(path, "header value must not hold control characters (but tab)")
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Length", "Transfer-Encoding", "Connection":
			p.KeyErrorf(path, "header %q is set by the sink itself", name)
		case "Authorization":
			if c.Token != "" {
				p.KeyErrorf(path, "header Authorization conflicts with token: keep one of them")
			}
		}
	}
	if !validHeaderValue(c.Token.Reveal()) {
		// net/http would refuse every request. The token is not quoted.
		p.Addf([]string{"token"}, "token must not hold control characters (CR, LF, NUL and the like; a trailing newline of a token file?)")
	}
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			p.KeyErrorf([]string{"tls"}, "key_file is set without cert_file: mutual TLS needs both")
		} else {
			p.KeyErrorf([]string{"tls"}, "cert_file is set without key_file: mutual TLS needs both")
		}
	}
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid url %q: %v", redactRaw(raw), unwrapURLErr(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid url %q: the scheme must be http or https", redactRaw(raw))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid url %q: no host (want e.g. \"http://127.0.0.1:8080/hook\")", redactRaw(raw))
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("invalid url %q: a fragment (#...) is never sent; remove it", redactRaw(raw))
	}
	return u, nil
}

// unwrapURLErr drops url.Error's copy of the input, which could hold a
// password.
func unwrapURLErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return errors.New("invalid %-escape (write a literal % as %25)") // the escape quotes bytes of the query
	}
	return err
}

// redactRaw hides the userinfo, the query and the fragment of a URL that
// may not parse, as safeURL does for one that does: any of them may hold a
// key.
func redactRaw(raw string) string {
	tail := ""
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		tail = raw[i:i+1] + "…"
		raw = raw[:i]
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw + tail
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 && !strings.ContainsAny(rest[:at], "/") {
		rest = "[redacted]@" + rest[at+1:]
	}
	return scheme + "://" + rest + tail
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (RFC 6454), the default port of the scheme counting as written.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// safeURL renders u for messages: without credentials and query.
func safeURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = ""
		return c.String() + "?…"
	}
	return c.String()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue is net/http's rule for a header value
// (httpguts.ValidHeaderFieldValue): no control characters but tab. A value
// it refuses fails every request.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Secret is a config string never shown in logs or errors.
type Secret = component.Secret

const description = `Sends records to an HTTP endpoint (a webhook).

Each Write becomes one request (several when the body would pass batch.max_bytes), or one request
per record with format = "single". Answers map to the task's error classes: 2xx delivered; 5xx
(but 501, 505 and 511), 429, 408, 421, 425, timeouts and connection errors retried (a Retry-After
header is honoured); 400, 413, 422 and other 4xx send the records to the dead-letter queue (a
rejected batch is split to find the offending records); 401, 403, 404, 405, 410, 415, 501, 505 and
511 stop the task. See docs/connectors/http.md.`

const example = `name = "to-webhook"

[source]
type = "http"
address = "127.0.0.1:8080"

[sink]
type = "http"
url = "https://hooks.example.com/ingest"
token = "${env:HOOK_TOKEN:-change-me}"
headers = { "X-Source" = "sluice" }
format = "ndjson"
timeout = "10s"
batch = { max_events = 500, max_bytes = "1MiB", max_wait = "1s" }
max_in_flight = 4
`

// Register adds the sink's spec to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:        component.KindSink,
		Name:        "http",
		Summary:     "Post records to an HTTP endpoint as NDJSON, a JSON array, or one request each.",
		Description: description,
		Example:     example,
		New:         newConfig,
		Build: func(cfg any, env component.Env) (any, error) {
			return New(cfg.(*Config), env)
		},
	})
}
