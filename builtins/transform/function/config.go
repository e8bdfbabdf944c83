// Package function is the `function` transform: it POSTs batches of events
// to an HTTP endpoint (an AWS Lambda function URL, a Knative service, an
// OpenFaaS function, any service) and uses the answer as the outputs, per
// record. The request is a JSON array of the events; the answer is a JSON
// array with one result per event (response.go). Overloaded or unreachable
// endpoints fail the records retryably, and the task's retry policy calls
// the function again; a record the function rejects goes to the dead-letter
// queue. docs/connectors/function.md is the user reference.
package function

import (
	"net/url"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Response formats.
const (
	ResponseResults = "results"
	ResponseValues  = "values"
)

// Config is the [[transform]] table of `type = "function"`.
type Config struct {
	URL           string             `toml:"url" required:"true" doc:"The function's endpoint, http:// or https://. Credentials in it (user:password@) are sent as basic auth and never shown in messages."`
	Timeout       component.Duration `toml:"timeout" doc:"Longest time for one call, from sending the request to reading the answer. A call that takes longer fails its records retryably: the task's retry policy calls again."`
	Response      string             `toml:"response" enum:"results,values" doc:"What the function answers, one array element per event, in order: results (objects with outputs, output, drop or error, so the function can fan out, filter and reject per record) or values (the output itself; null drops the event)."`
	Headers       map[string]string  `toml:"headers" doc:"Extra request headers, e.g. { \"x-api-key\" = \"${env:FN_KEY}\" }."`
	Token         component.Secret   `toml:"token" doc:"Bearer token sent as \"Authorization: Bearer TOKEN\". Write it as \"${env:VAR}\"; it is never logged."`
	MaxBatch      int                `toml:"max_batch" min:"1" max:"100000" doc:"Most events in one call; a larger batch of the task is split into several calls, in order."`
	MaxBatchBytes component.ByteSize `toml:"max_batch_bytes" doc:"Largest request body built from several events (AWS Lambda takes 6MB); past it the batch is split. An event larger than this is sent alone."`
	MaxResponse   component.ByteSize `toml:"max_response_bytes" doc:"Largest answer read; a larger one fails the call's records (dead-letter queue)."`
	MaxOutputs    int                `toml:"max_outputs" min:"1" max:"16777216" doc:"Most outputs one call's answer may hold, over all its events (each costs a message of about 170 bytes, for as little as 2 bytes of answer); a larger answer fails the call's records (dead-letter queue)."`
	TLS           *tlsconf.Client    `toml:"tls" doc:"TLS settings for https:// URLs (the system roots are trusted without this table)."`
}

func newConfig() any {
	return &Config{
		Timeout:       component.Duration(30 * time.Second),
		Response:      ResponseResults,
		MaxBatch:      100,
		MaxBatchBytes: 1 << 20,
		MaxResponse:   32 << 20,
		MaxOutputs:    65536,
	}
}

// Validate checks the URL and the limits.
func (c *Config) Validate(p *component.Problems) {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Addf([]string{"url"}, "invalid function URL %q: want http:// or https:// with a host", redact(c.URL))
		}
	}
	if c.Timeout.D() < time.Millisecond {
		p.Addf([]string{"timeout"}, "must be at least 1ms")
	}
	if c.MaxBatchBytes < 1024 {
		p.Addf([]string{"max_batch_bytes"}, "must be at least 1KiB")
	}
	if c.MaxResponse < 1024 {
		p.Addf([]string{"max_response_bytes"}, "must be at least 1KiB")
	}
	for k := range c.Headers {
		if k == "" {
			p.KeyErrorf([]string{"headers"}, "header name must not be empty")
		}
	}
}

// redact returns raw without the password it may carry.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
