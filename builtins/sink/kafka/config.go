// Package kafka is the `kafka` sink: it produces each record's payload to a
// topic with franz-go's idempotent producer (acks=all by default) and
// returns from Write only once the brokers acknowledged every record. The
// topic, key, headers and partition may be templates over the original
// source event (docs/transforms.md, "template"). docs/kafka.md is the user
// reference.
package kafka

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [sink] table of `type = "kafka"`.
type Config struct {
	Brokers     []string           `toml:"brokers" required:"true" doc:"Bootstrap brokers as \"host:port\"; the client learns the rest of the cluster from them."`
	ClientID    string             `toml:"client_id" doc:"Client id sent to the brokers (shows in their logs and quotas)."`
	SASL        *kafkaconf.SASL    `toml:"sasl" doc:"SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."`
	TLS         *kafkaconf.TLS     `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to open one connection to a broker."`

	Topic          string            `toml:"topic" required:"true" doc:"Topic to write to: a name, or a template such as \"orders-${region}\" over the original source event (variables come from the variables table)."`
	Key            string            `toml:"key" doc:"Record key template, e.g. \"${user}\". When set it wins over the key the record carries (a Kafka source's key); a key that renders empty is no key. Unset: the record's own key."`
	Headers        map[string]string `toml:"headers" doc:"Record headers, name = template. They replace headers of the same name the record carries; see forward_headers for the others."`
	ForwardHeaders bool              `toml:"forward_headers" doc:"Also write the headers the record carries (a Kafka source's headers, a dead-letter record's sluice-* headers), except those named in headers."`
	Variables      map[string]string `toml:"variables" doc:"Template variables: name = JSONPath into the original source event (\"$.data.value.region\") or a fixed text. Shared by topic, key, headers and partition."`

	Partitioner string `toml:"partitioner" enum:"hash,round_robin,manual" doc:"hash: records with a key go to murmur2(key) mod partitions, as Kafka's Java producer does; records without a key are spread in sticky batches. round_robin: one partition after the other, key ignored. manual: the partition key decides."`
	Partition   any    `toml:"partition" doc:"With partitioner = \"manual\": the partition, as an integer or a template rendering one (\"${p}\" with p = \"$.data.partition\" keeps a Kafka source's partition). A record whose partition is not a valid number goes to the dead-letter queue."`

	Acks             string             `toml:"acks" enum:"all,leader,none" doc:"Acknowledgement a record waits for: all in-sync replicas (the default, needed for the idempotent producer), the leader only, or none (fire and forget: delivery is not confirmed)."`
	Idempotent       bool               `toml:"idempotent" doc:"Idempotent producer: the broker drops duplicates of the producer's own retries, so a retry never writes a record twice and order holds per partition. Needs acks = \"all\"."`
	Compression      string             `toml:"compression" enum:"none,gzip,snappy,lz4,zstd" doc:"Compression of record batches."`
	BatchMaxBytes    component.ByteSize `toml:"batch_max_bytes" doc:"Largest record batch (before compression; max.message.bytes of the topic must be at least this). A single record larger than this goes to the dead-letter queue as MESSAGE_TOO_LARGE."`
	Linger           component.Duration `toml:"linger" doc:"How long a partition's batch waits for more records before it is sent (linger.ms). The task already gathers records into batches ([sink] batch), so the default sends at once."`
	MaxInFlight      int                `toml:"max_in_flight" min:"1" max:"32" doc:"Produce requests in flight per broker when idempotent = false (more than 1 can reorder records on retries). The idempotent producer always allows 5, Kafka's maximum for it."`
	MaxBuffered      int                `toml:"max_buffered_records" min:"1" max:"10000000" doc:"Records the client buffers before Write blocks (backpressure)."`
	DeliveryTimeout  component.Duration `toml:"delivery_timeout" doc:"Longest time a record may take to be acknowledged; past it the record fails as retryable and the task's retry policy takes over. A request already sent is given up too, so a record may then be written twice (at-least-once). \"0s\": wait for the brokers however long it takes (never duplicates)."`
	AutoCreateTopics bool               `toml:"auto_create_topics" doc:"Let the brokers create missing topics (if they allow it). Off: a missing topic stops the task (fixed topic) or dead-letters the record (templated topic)."`
	Timestamp        string             `toml:"timestamp" enum:"source,now" doc:"Record timestamp: the source's (a Kafka source's record time, the time of ingest for others) or the time of writing."`
}

// Defaults.
const (
	defaultDeliveryTimeout = 30 * time.Second
	defaultBatchMaxBytes   = 1000012 // Kafka's max.message.bytes default
	// The engine hands Write whole batches ([sink] batch) and Write waits
	// for them, so waiting for more records in the client only adds
	// latency; while a request is out, records gather anyway.
	defaultLinger      = 0
	defaultMaxBuffered = 50000
)

func newConfig() any {
	return &Config{
		ClientID:        "sluice",
		DialTimeout:     component.Duration(10 * time.Second),
		ForwardHeaders:  true,
		Partitioner:     "hash",
		Acks:            "all",
		Idempotent:      true,
		Compression:     "snappy",
		BatchMaxBytes:   defaultBatchMaxBytes,
		Linger:          component.Duration(defaultLinger),
		MaxInFlight:     1,
		MaxBuffered:     defaultMaxBuffered,
		DeliveryTimeout: component.Duration(defaultDeliveryTimeout),
		Timestamp:       "source",
	}
}

// KafkaEndpoint describes the sink for kafkaconf.CheckExactlyOnce.
func (c *Config) KafkaEndpoint() kafkaconf.Endpoint {
	return kafkaconf.Endpoint{
		Conn:            kafkaconf.Conn{Brokers: c.Brokers, ClientID: c.ClientID, SASL: c.SASL, TLS: c.TLS, DialTimeout: c.DialTimeout.D()},
		Acks:            c.Acks,
		Idempotent:      c.Idempotent,
		Partitioner:     c.Partitioner,
		DeliveryTimeout: c.DeliveryTimeout.D(),
	}
}

// Validate checks what the tags cannot: templates compile and name only
// known variables, a fixed topic is a valid name, settings agree.
func (c *Config) Validate(p *component.Problems) {
	kafkaconf.ValidateBrokers(p, "brokers", c.Brokers)
	_, _ = c.compile(p, 0)
	if c.Topic != "" && !strings.Contains(c.Topic, "${") {
		if msg := kafkaconf.TopicProblem(c.Topic); msg != "" {
			p.Addf([]string{"topic"}, "%s", msg)
		}
	}
	for name := range c.Headers {
		if name == "" {
			p.KeyErrorf([]string{"headers"}, "header name must not be empty")
		}
	}
	switch {
	case c.Partitioner == "manual" && c.Partition == nil:
		p.KeyErrorf(nil, "partitioner = \"manual\" needs the partition key (an integer or a template)")
	case c.Partitioner != "manual" && c.Partition != nil:
		p.KeyErrorf([]string{"partition"}, "partition is used only with partitioner = \"manual\"")
	}
	switch v := c.Partition.(type) {
	case nil, string:
	case int64:
		if v < 0 || v > 1<<31-1 {
			p.Addf([]string{"partition"}, "partition %d is out of range (0..2147483647)", v)
		}
	default:
		p.Addf([]string{"partition"}, "expected an integer or a template string")
	}
	if c.Idempotent && c.Acks != "all" {
		p.Addf([]string{"acks"}, "the idempotent producer needs acks = \"all\"; set idempotent = false to use acks = %q", c.Acks)
	}
	if c.BatchMaxBytes < 512 || c.BatchMaxBytes > 1<<30 {
		p.Addf([]string{"batch_max_bytes"}, "must be between 512 bytes and 1GiB")
	}
	if c.Linger.D() > time.Minute {
		p.Addf([]string{"linger"}, "must be at most 1m")
	}
	if d := c.DeliveryTimeout.D(); d != 0 && d < time.Second {
		p.Addf([]string{"delivery_timeout"}, "must be at least 1s, or \"0s\" to wait without limit")
	}
	if len(c.ClientID) > 256 {
		p.Addf([]string{"client_id"}, "must be at most 256 characters")
	}
}

// templates are the compiled topic, key, header and partition templates.
// A nil template means "not configured".
type templates struct {
	topic       *template.Template
	fixedTopic  string // set when topic holds no placeholder
	key         *template.Template
	headers     []headerTemplate
	partition   *template.Template
	fixedPart   int32
	manualFixed bool
}

type headerTemplate struct {
	name string
	tpl  *template.Template
}

var placeholderRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// compile compiles every template, reporting problems to p (which may be
// nil), each bounded by the task's event limit maxEvent (0: the default;
// template.OutputLimit). It returns false when anything failed.
func (c *Config) compile(p *component.Problems, maxEvent int) (*templates, bool) {
	ok := true
	reported := map[string]bool{} // variables are shared: report each once
	one := func(key []string, text string) *template.Template {
		// The template syntax (docs/transforms.md) leaves an unknown placeholder in the
		// output as written; in a topic or partition that can only be a
		// mistake ('$' is not valid there), so those reject it.
		strict := key[0] == "topic" || key[0] == "partition"
		for _, m := range placeholderRE.FindAllStringSubmatchIndex(text, -1) {
			if !strict {
				break
			}
			name := text[m[2]:m[3]]
			for _, f := range []string{"jsonEscape(", "htmlEscape("} {
				if inner, found := strings.CutPrefix(name, f); found && strings.HasSuffix(inner, ")") {
					name = strings.TrimSuffix(inner, ")")
				}
			}
			if _, known := c.Variables[name]; !known {
				ok = false
				if p != nil {
					p.AddAt(key, m[0], "unknown variable %q in ${...}: define it in variables (e.g. %s = \"$.data.key\")", name, name)
				}
			}
		}
		t, err := template.Compile(text, c.Variables)
		if err == nil {
			return t.WithLimit(template.OutputLimit(maxEvent))
		}
		ok = false
		var es template.Errors
		if !errors.As(err, &es) {
			if p != nil {
				p.Addf(key, "%v", err)
			}
			return nil
		}
		for _, e := range es {
			switch {
			case p == nil:
			case e.Var == "":
				p.AddAt(key, e.Offset, "%s: %s", e.Code, e.Msg)
			case !reported[e.Var]:
				reported[e.Var] = true
				p.AddAt([]string{"variables", e.Var}, e.Offset, "%s: %s", e.Code, e.Msg)
			}
		}
		return nil
	}
	ts := &templates{}
	if c.Topic != "" {
		if !strings.Contains(c.Topic, "${") {
			ts.fixedTopic = c.Topic
		}
		ts.topic = one([]string{"topic"}, c.Topic)
	}
	if c.Key != "" {
		ts.key = one([]string{"key"}, c.Key)
	}
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	slices.Sort(names) // a stable header order on the record
	for _, n := range names {
		if t := one([]string{"headers", n}, c.Headers[n]); t != nil {
			ts.headers = append(ts.headers, headerTemplate{name: n, tpl: t})
		}
	}
	switch v := c.Partition.(type) {
	case int64:
		ts.manualFixed, ts.fixedPart = true, int32(v)
	case string:
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
			ts.manualFixed, ts.fixedPart = true, int32(n)
		} else {
			ts.partition = one([]string{"partition"}, v)
		}
	}
	return ts, ok
}

// parsePartition parses a rendered partition.
func parsePartition(b []byte) (int32, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("partition template rendered %q, not a partition number", b)
	}
	return int32(n), nil
}
