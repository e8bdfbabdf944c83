// Package http is the `http` ingest source: an HTTP endpoint that takes
// events in request bodies (a JSON value, a JSON array, NDJSON, CloudEvents
// in structured and binary mode) and answers 2xx only once the task has
// handled them (docs/connectors/http.md). docs/connectors/http.md is the user
// reference.
//
// Each request becomes one component.Batch in its own lane. The handler
// waits for the batch's Ack: nil → 200, anything else, or no Ack within
// response_timeout → 503 with Retry-After.
package http

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [source] table of `type = "http"`.
type Config struct {
	Address         string             `toml:"address" required:"true" doc:"Address to listen on, \"host:port\" (\"127.0.0.1:8080\", \":8080\" for every interface; port 0 picks a free port)."`
	Path            string             `toml:"path" doc:"URL path that takes events. POST sends events; GET and HEAD answer 200 while the source runs (a health check for load balancers, no token needed). Other paths answer 404."`
	Token           Secret             `toml:"token" doc:"Bearer token every POST must carry (\"Authorization: Bearer TOKEN\"); empty: no authentication. Write it as \"${env:VAR}\"; it is never logged."`
	Format          string             `toml:"format" enum:"auto,json,cloudevents" doc:"How each element of a body becomes an event: auto wraps non-CloudEvents (JSON as data, text as a string), json wraps JSON and dead-letters non-JSON elements, cloudevents dead-letters anything that is not a CloudEvent."`
	InvalidUTF8     string             `toml:"invalid_utf8" enum:"replace,reject" doc:"What an element holding bytes that are not valid UTF-8 becomes: replace (each such byte becomes U+FFFD, so the event is valid JSON) or reject (the element goes to the dead-letter queue at stage decode, its bytes kept in event_base64). Binary-mode JSON data follows the same rule."`
	MaxBodySize     component.ByteSize `toml:"max_body_size" doc:"Largest request body, as sent and, when compressed, once decoded; a larger one is answered 413 and nothing of it is kept."`
	MaxEventSize    component.ByteSize `toml:"max_event_size" doc:"Largest single event (one element of a body); a larger one goes to the dead-letter queue at stage decode. Default: the task's event limit (1 MiB)."`
	ResponseTimeout component.Duration `toml:"response_timeout" doc:"How long a request waits without progress once its body is read: for a request slot, then for the task to take or confirm each batch of its events. Past it the answer is 503 with Retry-After."`
	ReadTimeout     component.Duration `toml:"read_timeout" doc:"Longest time to read a request's body (headers: at most 10 s of it); a slower client gets 408 and is disconnected."`
	MinBodyRate     component.ByteSize `toml:"min_body_rate" doc:"Slowest average rate, in bytes per second, at which a body may arrive once it has taken 5 s; a slower client gets 408 and is disconnected (slowloris). \"0\" turns the check off (read_timeout still applies)."`
	MaxRequests     int                `toml:"max_requests" min:"1" max:"100000" doc:"Requests whose events are handled at once (a request takes a slot once its body is read). More wait up to response_timeout for a slot, then get 503. Bodies being received or handled share max_requests × max_body_size bytes of memory."`
	MaxConnections  int                `toml:"max_connections" min:"1" max:"1000000" doc:"Most client connections open at once, idle keep-alive ones included; more wait in the system's accept queue until one closes. With request headers capped at 64 KiB, it bounds what connections can hold in memory besides the bodies' budget."`
	Batch           Batch              `toml:"batch" doc:"Size of the batches a request's events are handed to the task in; a larger body is handed over batch after batch, and answered once all of them were handled."`
	EventSource     string             `toml:"event_source" doc:"CloudEvents source attribute of wrapped events. Default: \"sluice/TASK/http\"."`
	EventType       string             `toml:"event_type" doc:"CloudEvents type attribute of wrapped events."`
	TLS             *TLS               `toml:"tls" doc:"Serve HTTPS. The table's presence turns TLS on."`
	Concurrency     int                `toml:"concurrency" min:"1" max:"32" doc:"Workers handling requests' events in parallel. Requests are independent, so more workers serve more concurrent clients."`
	Order           string             `toml:"order" enum:"partition,key,none" doc:"Order kept while workers run in parallel. Each request is its own stream, so partition keeps the order of the events of one request; none lets one request's events spread over workers; key orders per record key (HTTP events carry none)."`
}

// Batch bounds the batches a request's events are handed to the task in.
type Batch struct {
	MaxEvents int                `toml:"max_events" min:"1" max:"100000" doc:"Most events in one batch."`
	MaxBytes  component.ByteSize `toml:"max_bytes" doc:"Batch size in bytes of built events after which no more are added (a batch always holds at least one event)."`
}

// TLS is the `tls` table of the source.
type TLS = tlsconf.Server

// Defaults.
const (
	defaultMaxBody         = 10 << 20
	defaultResponseTimeout = 10 * time.Second
	defaultReadTimeout     = 30 * time.Second
	defaultMaxRequests     = 64
	defaultMaxConnections  = 1024
	// maxHeaderBytes caps a request's headers (net/http's default is 1
	// MiB): read before the token is checked, they are what an
	// unauthenticated client can make the source hold per connection.
	maxHeaderBytes     = 64 << 10
	defaultMinBodyRate = 16 << 10
	defaultBatchEvents = 1000
	defaultBatchBytes  = 1 << 20
	defaultEventType   = "sluice.http"
)

func newConfig() any {
	return &Config{
		Path:            "/",
		Format:          string(lineformat.Auto),
		InvalidUTF8:     string(lineformat.Replace),
		MaxBodySize:     defaultMaxBody,
		ResponseTimeout: component.Duration(defaultResponseTimeout),
		ReadTimeout:     component.Duration(defaultReadTimeout),
		MaxRequests:     defaultMaxRequests,
		MaxConnections:  defaultMaxConnections,
		MinBodyRate:     defaultMinBodyRate,
		Batch:           Batch{MaxEvents: defaultBatchEvents, MaxBytes: defaultBatchBytes},
		EventType:       defaultEventType,
		Concurrency:     1,
		Order:           "partition",
	}
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	if c.Address != "" {
		if err := checkAddress(c.Address); err != nil {
			p.Addf([]string{"address"}, "%v", err)
		}
	}
	if !strings.HasPrefix(c.Path, "/") {
		p.Addf([]string{"path"}, "invalid path %q: must start with \"/\"", c.Path)
	} else if strings.ContainsAny(c.Path, "?# \t") {
		p.Addf([]string{"path"}, "invalid path %q: a path holds no query, fragment or whitespace", c.Path)
	}
	if c.MaxBodySize <= 0 {
		p.Addf([]string{"max_body_size"}, "must be positive (e.g. \"10MiB\")")
	}
	if c.ResponseTimeout <= 0 {
		p.Addf([]string{"response_timeout"}, "must be positive (e.g. \"10s\")")
	}
	if c.ReadTimeout <= 0 {
		p.Addf([]string{"read_timeout"}, "must be positive (e.g. \"30s\")")
	}
	if c.MinBodyRate < 0 {
		p.Addf([]string{"min_body_rate"}, "must not be negative (e.g. \"16KiB\", or \"0\" for no minimum)")
	}
	if c.Batch.MaxBytes < 1 {
		p.Addf([]string{"batch", "max_bytes"}, "must be at least 1 byte")
	}
	if c.Token != "" && strings.TrimSpace(c.Token.Reveal()) != c.Token.Reveal() {
		p.Addf([]string{"token"}, "must not start or end with whitespace (clients send it after \"Bearer \")")
	}
}

func checkAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		hint := ""
		if !strings.Contains(addr, ":") {
			hint = fmt.Sprintf(" (did you mean %q?)", addr+":8080")
		}
		return fmt.Errorf("invalid address %q: want \"host:port\"%s", addr, hint)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid address %q: the port must be a number in 0..65535", addr)
	}
	return nil
}

// Secret is a config string never shown in logs or errors.
type Secret = component.Secret

const description = `Listens for HTTP requests and turns each request body into events.

Bodies are chosen by Content-Type: a JSON value or a JSON array (application/json, one event per
array element), NDJSON or text lines (application/x-ndjson, text/plain), a structured CloudEvent
(application/cloudevents+json) or a batch of them (application/cloudevents-batch+json), and
CloudEvents binary mode (ce-* headers, the body is the data). Without a Content-Type the body is
sniffed: valid JSON is taken as JSON, anything else as lines.

A request is answered 200 only once every one of its events was handled by the task (delivered,
filtered or dead-lettered); past response_timeout it gets 503 with Retry-After. See
docs/connectors/http.md for answers, event shape and delivery guarantee.`

const example = `name = "ingest"

[source]
type = "http"
address = "127.0.0.1:8080"
path = "/events"
token = "${env:INGEST_TOKEN:-change-me}"
format = "auto"
max_body_size = "10MiB"
response_timeout = "10s"
concurrency = 4

[sink]
type = "http"
url = "http://127.0.0.1:9000/hook"
`

// Register adds the source's spec to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:        component.KindSource,
		Name:        "http",
		Summary:     "Receive events over HTTP (JSON, NDJSON, CloudEvents); answer 200 once they are handled.",
		Description: description,
		Example:     example,
		New:         newConfig,
		Build: func(cfg any, env component.Env) (any, error) {
			return New(cfg.(*Config), env)
		},
	})
}
