// Package rabbitmq is the `rabbitmq` source: it consumes one queue with
// amqp091-go under a prefetch limit and wraps each message in a CloudEvent.
// A message is acknowledged only once it and every message delivered before
// it were delivered, filtered or dead-lettered (one `multiple` ack per
// batch, in delivery order); what is not acknowledged when the connection
// ends, by a stop, a crash or an outage, the broker delivers again.
// docs/connectors/rabbitmq.md is the user reference.
package rabbitmq

import (
	"time"

	"github.com/sluicehq/sluice/builtins/internal/amqpconf"
	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Binding binds the queue to an exchange.
type Binding struct {
	Exchange   string `toml:"exchange" required:"true" doc:"Exchange to bind the queue to; declared (durable, exchange_type) when missing and declare is on."`
	RoutingKey string `toml:"routing_key" doc:"Binding key: the routing key (direct), or a pattern such as \"orders.eu.#\" (topic). Ignored by fanout exchanges."`
}

// Config is the [source] table of `type = "rabbitmq"`.
type Config struct {
	URL         string             `toml:"url" required:"true" doc:"AMQP URL: \"amqp://user:password@host:5672/vhost\" (amqps:// for TLS). Keep the password out of the file with \"${env:RABBITMQ_URL}\"."`
	TLS         *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence (or an amqps:// URL) turns TLS on."`
	Heartbeat   component.Duration `toml:"heartbeat" doc:"AMQP heartbeat interval: a connection silent for about twice this long is considered dead and reopened."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to connect and log in."`

	Queue     string    `toml:"queue" required:"true" doc:"Queue to consume."`
	Prefetch  int       `toml:"prefetch" min:"1" max:"65535" doc:"Most messages delivered and not acknowledged at a time (basic.qos). It bounds memory and what a crash delivers again."`
	Declare   bool      `toml:"declare" doc:"Declare the queue (durable) and the exchanges of bindings when they are missing, and log that it did. Off: a missing queue stops the task."`
	QueueType string    `toml:"queue_type" enum:"classic,quorum,stream" doc:"x-queue-type of a queue this source declares. Default: the broker's default (classic). Ignored for a queue that exists."`
	Bindings  []Binding `toml:"bindings" doc:"Bindings to add to the queue at start (idempotent), e.g. [{ exchange = \"orders\", routing_key = \"eu.#\" }]."`
	// ExchangeType is the type of exchanges declared for bindings.
	ExchangeType string `toml:"exchange_type" enum:"direct,fanout,topic,headers" doc:"Type of a missing exchange of bindings that this source declares."`
	ConsumerTag  string `toml:"consumer_tag" doc:"Consumer tag shown by the broker. Default: \"sluice-<task>-<random>\"."`
	Exclusive    bool   `toml:"exclusive" doc:"Consume exclusively: a second consumer (another Sluice process) is refused while this one runs, which keeps one reader in queue order. Off: several processes share the queue."`

	BodyFormat string `toml:"body_format" enum:"json,text,base64" doc:"How data.body holds the message body: json (parsed, so patterns reach data.body.*; a body that is not JSON stays a string), text (a string; invalid UTF-8 becomes U+FFFD), base64 (a Base64 string, for binary bodies)."`
}

func newConfig() any {
	return &Config{
		Heartbeat:    component.Duration(10 * time.Second),
		DialTimeout:  component.Duration(10 * time.Second),
		Prefetch:     defaultPrefetch,
		Declare:      true,
		ExchangeType: "topic",
		BodyFormat:   eventenc.FormatJSON,
	}
}

const defaultPrefetch = 1000

// Validate checks what the tags cannot. It does no I/O.
func (c *Config) Validate(p *component.Problems) {
	amqpconf.ValidateURL(p, "url", c.URL)
	if len(c.Queue) > 255 {
		p.Addf([]string{"queue"}, "queue names are at most 255 bytes")
	}
	if c.Queue != "" && len(c.Queue) >= 4 && c.Queue[:4] == "amq." && c.Declare {
		// The broker reserves amq.* for itself: declaring one fails.
		p.Addf([]string{"queue"}, "queue names starting with \"amq.\" are reserved by the broker; set declare = false to consume an existing one")
	}
	if c.Heartbeat.D() != 0 && c.Heartbeat.D() < time.Second {
		p.Addf([]string{"heartbeat"}, "must be at least 1s (or \"0s\" for the broker's interval)")
	}
	if c.DialTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"dial_timeout"}, "must be at least 100ms")
	}
}
