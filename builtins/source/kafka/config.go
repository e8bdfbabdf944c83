// Package kafka is the `kafka` source: it consumes topics in a consumer
// group with franz-go and wraps each record in a CloudEvent (docs/kafka.md). Offsets are committed per partition only up to
// the last record of the contiguous prefix of batches the engine
// acknowledged, on a timer, when partitions are revoked and on Close.
// docs/kafka.md is the user reference.
package kafka

import (
	"fmt"
	"regexp"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Value and key formats.
const (
	FormatJSON   = "json"
	FormatText   = "text"
	FormatBase64 = "base64"
)

// Config is the [source] table of `type = "kafka"`.
type Config struct {
	Brokers     []string           `toml:"brokers" required:"true" doc:"Bootstrap brokers as \"host:port\"; the client learns the rest of the cluster from them."`
	ClientID    string             `toml:"client_id" doc:"Client id sent to the brokers (shows in their logs and quotas)."`
	SASL        *kafkaconf.SASL    `toml:"sasl" doc:"SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."`
	TLS         *kafkaconf.TLS     `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to open one connection to a broker."`

	Topics      []string `toml:"topics" doc:"Topics to consume. Exactly one of topics and topics_regex is required."`
	TopicsRegex string   `toml:"topics_regex" doc:"A regular expression (Go RE2 syntax) selecting the topics to consume, also those created later, e.g. \"^orders-.*\". Anchor it: it matches anywhere in a name otherwise."`
	Group       string   `toml:"group" doc:"Consumer group; an existing group resumes from its committed offsets. Default: \"sluice-<task name>\"."`
	Offset      string   `toml:"offset" doc:"Where a partition starts when the group has no committed offset for it: earliest, latest, or an RFC 3339 time (the first record at or after that time; latest when there is none)."`

	Concurrency int    `toml:"concurrency" min:"1" max:"32" doc:"Workers processing this task's records in parallel. Order is kept per partition (see order)."`
	Order       string `toml:"order" enum:"partition,key,none" doc:"What stays in order with concurrency > 1: partition (each partition on one worker), key (a partition is spread over workers, each key on one), none."`

	ValueFormat string `toml:"value_format" enum:"json,text,base64" doc:"How data.value holds the record value: json (parsed, so patterns reach data.value.*; a value that is not JSON stays a string and is counted in sluice_kafka_value_not_json_total), text (a string; invalid UTF-8 becomes U+FFFD), base64 (a Base64 string, for binary values)."`
	KeyFormat   string `toml:"key_format" enum:"text,base64" doc:"How data.key holds the record key: text or base64."`

	MaxPollRecords         int                `toml:"max_poll_records" min:"1" max:"1000000" doc:"Most records taken from the client per poll; each poll is cut into one batch per partition."`
	FetchMaxBytes          component.ByteSize `toml:"fetch_max_bytes" doc:"Most bytes a broker returns for one fetch request (fetch.max.bytes)."`
	FetchMaxPartitionBytes component.ByteSize `toml:"fetch_max_partition_bytes" doc:"Most bytes a broker returns per partition in one fetch (max.partition.fetch.bytes)."`
	FetchMinBytes          component.ByteSize `toml:"fetch_min_bytes" doc:"Bytes a broker waits for before answering a fetch, up to fetch_max_wait (fetch.min.bytes)."`
	FetchMaxWait           component.Duration `toml:"fetch_max_wait" doc:"Longest time a broker holds a fetch waiting for fetch_min_bytes (fetch.max.wait.ms)."`
	MaxDecompressedBatch   component.ByteSize `toml:"max_decompressed_batch_bytes" doc:"Most bytes one record batch may decompress to (fetch sizes count compressed bytes). A batch past it, or one that cannot be decompressed, is not read: its offsets go to the dead-letter queue as one failed event and the partition goes on after it. Default: 64MiB, or 4 x max_event_size when that is larger."`
	IsolationLevel         string             `toml:"isolation_level" enum:"read_uncommitted,read_committed" doc:"read_committed skips records of aborted transactions and waits for open ones; read_uncommitted reads everything. Default: read_uncommitted, or read_committed with exactly_once."`

	SessionTimeout    component.Duration `toml:"session_timeout" doc:"How long the group waits for a silent member before giving its partitions away (session.timeout.ms)."`
	RebalanceTimeout  component.Duration `toml:"rebalance_timeout" doc:"How long members may take to rejoin once a rebalance starts (rebalance.timeout.ms); must exceed revoke_timeout."`
	HeartbeatInterval component.Duration `toml:"heartbeat_interval" doc:"Time between heartbeats to the group coordinator (heartbeat.interval.ms)."`
	RebalanceStrategy string             `toml:"rebalance_strategy" enum:"cooperative-sticky,sticky,range,roundrobin" doc:"How partitions are spread over the group's members. cooperative-sticky moves only the partitions that must move; the others stop the whole group on each rebalance. Every member of a group must agree."`
	InstanceID        string             `toml:"instance_id" doc:"Static group membership (group.instance.id): a member that restarts within session_timeout gets its partitions back without a rebalance. Unique per process."`
	CommitInterval    component.Duration `toml:"commit_interval" doc:"How often acknowledged offsets are committed. Offsets are also committed as soon as the records waiting for a commit fill half the in-flight window, when partitions are revoked, and on shutdown. With exactly_once: how long one transaction gathers records before it commits (records become visible to read_committed readers then)."`
	RevokeTimeout     component.Duration `toml:"revoke_timeout" doc:"On a rebalance, how long to wait for in-flight batches of the partitions being taken away before committing what is done and letting go; what is not done by then is read again by the new owner."`

	TransactionTimeout component.Duration `toml:"transaction_timeout" doc:"With exactly_once: how long a transaction may stay open before the brokers abort it (transaction.timeout.ms; brokers cap it at transaction.max.timeout.ms). It bounds how long a crashed process's last transaction holds up read_committed readers and the group's offsets when its successor has another transactional_id."`
	TransactionalID    string             `toml:"transactional_id" doc:"With exactly_once: the producer's transactional id, unique per process. A process restarted with the same id fences its crashed predecessor's transaction at once. Default: \"<group>-<instance_id>\" with instance_id, else \"<group>-<random>\"."`
}

// KafkaEndpoint describes the source for kafkaconf.CheckExactlyOnce.
func (c *Config) KafkaEndpoint() kafkaconf.Endpoint {
	return kafkaconf.Endpoint{
		Conn:               kafkaconf.Conn{Brokers: c.Brokers, ClientID: c.ClientID, SASL: c.SASL, TLS: c.TLS, DialTimeout: c.DialTimeout.D()},
		IsolationLevel:     c.IsolationLevel,
		CommitInterval:     c.CommitInterval.D(),
		TransactionTimeout: c.TransactionTimeout.D(),
	}
}

// Defaults.
const (
	defaultClientID       = "sluice"
	defaultMaxPollRecords = 500
	defaultFetchMaxWait   = 500 * time.Millisecond
	defaultRevokeTimeout  = 10 * time.Second
)

func newConfig() any {
	return &Config{
		ClientID:               defaultClientID,
		DialTimeout:            component.Duration(10 * time.Second),
		Offset:                 "latest",
		Concurrency:            1,
		Order:                  "partition",
		ValueFormat:            FormatJSON,
		KeyFormat:              FormatText,
		MaxPollRecords:         defaultMaxPollRecords,
		FetchMaxBytes:          50 << 20,
		FetchMaxPartitionBytes: 1 << 20,
		FetchMinBytes:          1,
		FetchMaxWait:           component.Duration(defaultFetchMaxWait),
		SessionTimeout:         component.Duration(45 * time.Second),
		RebalanceTimeout:       component.Duration(60 * time.Second),
		HeartbeatInterval:      component.Duration(3 * time.Second),
		RebalanceStrategy:      "cooperative-sticky",
		CommitInterval:         component.Duration(5 * time.Second),
		RevokeTimeout:          component.Duration(defaultRevokeTimeout),
		TransactionTimeout:     component.Duration(90 * time.Second),
	}
}

// Validate checks what the tags cannot. It does no I/O.
func (c *Config) Validate(p *component.Problems) {
	kafkaconf.ValidateBrokers(p, "brokers", c.Brokers)
	switch {
	case len(c.Topics) == 0 && c.TopicsRegex == "":
		p.KeyErrorf(nil, "missing required key \"topics\" (or \"topics_regex\")")
	case len(c.Topics) > 0 && c.TopicsRegex != "":
		p.KeyErrorf([]string{"topics_regex"}, "topics and topics_regex are exclusive: keep one of them")
	}
	for i, t := range c.Topics {
		if msg := kafkaconf.TopicProblem(t); msg != "" {
			p.Addf([]string{"topics", component.Index(i)}, "%s", msg)
		}
	}
	if c.TopicsRegex != "" {
		if _, err := regexp.Compile(c.TopicsRegex); err != nil {
			p.Addf([]string{"topics_regex"}, "invalid regular expression: %v", err)
		}
	}
	if _, _, err := ParseOffset(c.Offset); err != nil {
		p.Addf([]string{"offset"}, "%v", err)
	}
	atLeast := func(key string, d component.Duration, min time.Duration) {
		if d.D() < min {
			p.Addf([]string{key}, "must be at least %s", min)
		}
	}
	// The client's own lower bounds, checked here so that they show at
	// load time rather than when the task starts.
	atLeast("session_timeout", c.SessionTimeout, 100*time.Millisecond)
	atLeast("rebalance_timeout", c.RebalanceTimeout, 100*time.Millisecond)
	atLeast("heartbeat_interval", c.HeartbeatInterval, time.Millisecond)
	atLeast("commit_interval", c.CommitInterval, 100*time.Millisecond)
	atLeast("fetch_max_wait", c.FetchMaxWait, 10*time.Millisecond)
	if d := c.TransactionTimeout.D(); d < time.Second || d > 15*time.Minute {
		p.Addf([]string{"transaction_timeout"}, "must be between 1s and 15m")
	}
	if len(c.TransactionalID) > 256 {
		p.Addf([]string{"transactional_id"}, "must be at most 256 characters")
	}
	if len(c.ClientID) > 256 {
		p.Addf([]string{"client_id"}, "must be at most 256 characters")
	}
	if c.HeartbeatInterval >= c.SessionTimeout && c.SessionTimeout > 0 {
		p.Addf([]string{"heartbeat_interval"}, "must be shorter than session_timeout (%s); a third of it is usual", c.SessionTimeout)
	}
	if c.RevokeTimeout >= c.RebalanceTimeout && c.RebalanceTimeout > 0 {
		p.Addf([]string{"revoke_timeout"}, "must be shorter than rebalance_timeout (%s), or the group drops this member while it drains", c.RebalanceTimeout)
	}
	for key, v := range map[string]component.ByteSize{
		"fetch_max_bytes": c.FetchMaxBytes, "fetch_max_partition_bytes": c.FetchMaxPartitionBytes, "fetch_min_bytes": c.FetchMinBytes,
	} {
		if v <= 0 || v > 1<<31-1 {
			p.Addf([]string{key}, "must be between 1 byte and 2GiB")
		}
	}
	if v := c.MaxDecompressedBatch; v < 0 || v > 1<<31-1 {
		p.Addf([]string{"max_decompressed_batch_bytes"}, "must be between 1 byte and 2GiB (or 0 for the default)")
	}
}

// Start positions for a new group.
const (
	StartEarliest = iota
	StartLatest
	StartTime
)

// ParseOffset parses the offset key: "earliest", "latest" or an RFC 3339
// time. It returns the kind and, for a time, its epoch milliseconds.
func ParseOffset(s string) (kind int, millis int64, err error) {
	switch s {
	case "earliest":
		return StartEarliest, 0, nil
	case "latest":
		return StartLatest, 0, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid offset %q: want earliest, latest or an RFC 3339 time such as \"2024-05-01T00:00:00Z\"", s)
	}
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 && ms >= 0 {
		ms++ // Kafka stamps whole milliseconds: round up to stay "at or after"
	}
	return StartTime, ms, nil
}
