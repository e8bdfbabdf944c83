// Package rabbitmq is the `rabbitmq` sink: it publishes each record's
// payload to an exchange with amqp091-go, persistent and with publisher
// confirms, and returns from Write only once the broker confirmed every
// message. The exchange, routing key, headers and message id may be
// templates over the original source event. docs/connectors/rabbitmq.md is
// the user reference.
package rabbitmq

import (
	"slices"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/amqpconf"
	"github.com/sluicehq/sluice/builtins/internal/sinktpl"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [sink] table of `type = "rabbitmq"`.
type Config struct {
	URL         string             `toml:"url" required:"true" doc:"AMQP URL: \"amqp://user:password@host:5672/vhost\" (amqps:// for TLS). Keep the password out of the file with \"${env:RABBITMQ_URL}\"."`
	TLS         *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence (or an amqps:// URL) turns TLS on."`
	Heartbeat   component.Duration `toml:"heartbeat" doc:"AMQP heartbeat interval: a connection silent for about twice this long is considered dead and reopened."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to connect and log in."`

	Exchange     string            `toml:"exchange" doc:"Exchange to publish to: a name or a template such as \"orders-${region}\". Empty: the default exchange, which routes to the queue named by the routing key."`
	RoutingKey   string            `toml:"routing_key" doc:"Routing key template, e.g. \"orders.${region}\". Unset: queue when it is set, else the record's own key (a RabbitMQ source's routing key, a Kafka source's key)."`
	Queue        string            `toml:"queue" doc:"A queue to publish to through the default exchange (when exchange is empty and routing_key unset), declared durable when missing unless declare = false."`
	Declare      bool              `toml:"declare" doc:"Declare a missing exchange (durable, exchange_type; also each new name a templated exchange renders) and a missing queue, and log that it did. Off: a missing fixed exchange or queue stops the task, and a record routed to a missing templated exchange goes to the dead-letter queue."`
	ExchangeType string            `toml:"exchange_type" enum:"direct,fanout,topic,headers" doc:"Type of an exchange this sink declares."`
	QueueType    string            `toml:"queue_type" enum:"classic,quorum,stream" doc:"x-queue-type of a queue this sink declares. Default: the broker's default (classic)."`
	Mandatory    bool              `toml:"mandatory" doc:"Publish as mandatory: a message no queue is bound to receive comes back from the broker and goes to the dead-letter queue (event-permanent). Off: the broker drops such messages silently."`
	Persistent   bool              `toml:"persistent" doc:"Delivery mode 2: durable queues keep the message across a broker restart."`
	Headers      map[string]string `toml:"headers" doc:"Message headers, name = template. They replace headers of the same name the record carries; see forward_headers for the others."`
	// ForwardHeaders copies the record's own headers.
	ForwardHeaders bool              `toml:"forward_headers" doc:"Also write the headers the record carries (a Kafka or RabbitMQ source's headers, a dead-letter record's sluice-* headers), except those named in headers."`
	MessageID      string            `toml:"message_id" doc:"message_id property template, e.g. \"${id}\" with id = \"$.id\" (the source event's id, stable across redeliveries, for consumers that deduplicate). Unset: none."`
	ContentType    string            `toml:"content_type" doc:"content_type property of every message, e.g. \"application/json\". Unset: none."`
	Variables      map[string]string `toml:"variables" doc:"Template variables: name = JSONPath into the original source event (\"$.data.region\") or a fixed text. Shared by exchange, routing_key, headers and message_id."`

	ConfirmTimeout component.Duration `toml:"confirm_timeout" doc:"Longest time a Write waits for the broker's confirms; past it the batch fails as retryable and the task's retry policy publishes it again (a message may then arrive twice)."`
}

func newConfig() any {
	return &Config{
		Heartbeat:      component.Duration(10 * time.Second),
		DialTimeout:    component.Duration(10 * time.Second),
		Declare:        true,
		ExchangeType:   "topic",
		Mandatory:      true,
		Persistent:     true,
		ForwardHeaders: true,
		ConfirmTimeout: component.Duration(30 * time.Second),
	}
}

// Validate checks what the tags cannot: the URL parses, templates compile
// and name only known variables, settings agree.
func (c *Config) Validate(p *component.Problems) {
	amqpconf.ValidateURL(p, "url", c.URL)
	if ts, ok := c.compile(p, 0); ok {
		// AMQP short strings (at most 255 bytes) known without a record;
		// a template's rendering is checked per record.
		for _, f := range []struct {
			key string
			f   *sinktpl.Field
		}{{"exchange", ts.exchange}, {"routing_key", ts.routingKey}, {"message_id", ts.messageID}} {
			if f.f != nil && f.f.IsFixed && len(f.f.Fixed) > shortstrMax && (f.key != "routing_key" || c.RoutingKey != "") {
				p.Addf([]string{f.key}, "is %d bytes; AMQP allows at most %d", len(f.f.Fixed), shortstrMax)
			}
		}
	}
	if len(c.ContentType) > shortstrMax {
		p.Addf([]string{"content_type"}, "is %d bytes; AMQP allows at most %d", len(c.ContentType), shortstrMax)
	}
	if c.Queue != "" && c.Exchange != "" {
		p.KeyErrorf([]string{"queue"}, "queue publishes through the default exchange: drop exchange, or drop queue and bind your queue to the exchange")
	}
	if len(c.Queue) > 255 {
		p.Addf([]string{"queue"}, "queue names are at most 255 bytes")
	}
	for name := range c.Headers {
		if name == "" {
			p.KeyErrorf([]string{"headers"}, "header name must not be empty")
		}
		if len(name) > shortstrMax {
			p.KeyErrorf([]string{"headers"}, "header name %.40q... is %d bytes; AMQP allows at most %d", name, len(name), shortstrMax)
		}
	}
	if c.DialTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"dial_timeout"}, "must be at least 100ms")
	}
	if c.Heartbeat.D() != 0 && c.Heartbeat.D() < time.Second {
		p.Addf([]string{"heartbeat"}, "must be at least 1s (or \"0s\" for the broker's interval)")
	}
	if c.ConfirmTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"confirm_timeout"}, "must be at least 100ms")
	}
}

// templates are the compiled templates; nil means "not configured".
type templates struct {
	exchange   *sinktpl.Field
	routingKey *sinktpl.Field
	messageID  *sinktpl.Field
	headers    []header
}

type header struct {
	name string
	tpl  *sinktpl.Field
}

// compile compiles every template, reporting problems to p (which may be
// nil), each bounded by the task's event limit maxEvent (0: the default;
// template.OutputLimit). It returns false when anything failed.
func (c *Config) compile(p *component.Problems, maxEvent int) (*templates, bool) {
	cp := sinktpl.New(c.Variables, p)
	cp.MaxEvent = maxEvent
	ts := &templates{}
	ts.exchange = cp.Field([]string{"exchange"}, c.Exchange, true)
	switch {
	case c.RoutingKey != "":
		ts.routingKey = cp.Field([]string{"routing_key"}, c.RoutingKey, false)
	case c.Queue != "":
		ts.routingKey = &sinktpl.Field{Fixed: c.Queue, IsFixed: true}
	}
	if c.MessageID != "" {
		ts.messageID = cp.Field([]string{"message_id"}, c.MessageID, false)
	}
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if f := cp.Field([]string{"headers", n}, c.Headers[n], false); f != nil {
			ts.headers = append(ts.headers, header{name: n, tpl: f})
		}
	}
	return ts, cp.OK
}

func (t *templates) overrides(name string) bool {
	for _, h := range t.headers {
		if h.name == name {
			return true
		}
	}
	return false
}
