package kafkaconf_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	filesink "github.com/sluicehq/sluice/builtins/sink/file"
	sinkkafka "github.com/sluicehq/sluice/builtins/sink/kafka"
	"github.com/sluicehq/sluice/builtins/source/generate"
	srckafka "github.com/sluicehq/sluice/builtins/source/kafka"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

func loader() *config.Loader {
	r := component.NewRegistry()
	srckafka.Register(r)
	sinkkafka.Register(r)
	generate.Register(r)
	filesink.Register(r)
	return &config.Loader{Registry: r, Shared: component.NewShared(), Logger: zerolog.Nop(),
		TaskChecks: []func(*config.Task, *component.Problems){kafkaconf.CheckExactlyOnce}}
}

const eosBase = `name = "eos"
exactly_once = true
[source]
type = "kafka"
brokers = ["k1:9092", "k2:9092"]
topics = ["in"]
[sink]
type = "kafka"
brokers = ["k2:9092"]
topic = "out"
[retry]
policy = "none"
`

// TestCheckExactlyOnce: combinations that cannot keep the exactly-once
// promise are rejected at load, each problem at the key to fix.
func TestCheckExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string // substrings of the diagnostics, in order; none: loads
	}{
		{"kafka to kafka loads", eosBase, nil},
		{"kafka dead-letter queue on the same cluster loads", eosBase + `[dead_letter]
type = "kafka"
brokers = ["k1:9092"]
topic = "dlq"
`, nil},
		{"custom retries that fit load", strings.Replace(strings.Replace(eosBase, `policy = "none"`, `policy = "custom"
attempts = 2
initial = "1s"
max = "2s"`, 1), `topic = "out"`, `topic = "out"
delivery_timeout = "10s"`, 1), nil},
		{"without exactly_once anything goes", strings.Replace(eosBase, "exactly_once = true", "exactly_once = false", 1) + `[dead_letter]
type = "file"
path = "dlq.jsonl"
`, nil},
		{"generate source", `name = "eos"
exactly_once = true
[source]
type = "generate"
[sink]
type = "kafka"
brokers = ["k1:9092"]
topic = "out"
[retry]
policy = "none"
`, []string{`task.toml:2:16: exactly_once: exactly_once = true needs a kafka source (its offsets commit inside the transaction), not "generate"`}},
		{"file sink", `name = "eos"
exactly_once = true
[source]
type = "kafka"
brokers = ["k1:9092"]
topics = ["in"]
[sink]
type = "file"
path = "out.jsonl"
`, []string{`exactly_once: exactly_once = true needs a kafka sink (its records are written inside the transaction), not "file"`}},
		{"file dead-letter queue", eosBase + `[dead_letter]
type = "file"
path = "dlq.jsonl"
`, []string{`dead_letter.type: under exactly_once = true the dead-letter queue must be kafka on the sink's cluster`}},
		{"sink on another cluster", strings.Replace(eosBase, `brokers = ["k2:9092"]`, `brokers = ["other:9092"]`, 1),
			[]string{`task.toml:9:11: sink.brokers: under exactly_once = true one transaction covers the whole task, so it must stay on one cluster: brokers ["other:9092"] share no address with the source's ["k1:9092" "k2:9092"]`}},
		{"dead-letter queue on another cluster, partitioned otherwise", eosBase + `[dead_letter]
type = "kafka"
brokers = ["other:9092"]
topic = "dlq"
partitioner = "round_robin"
`, []string{`dead_letter.brokers: under exactly_once = true one transaction covers the whole task`, `dead_letter.partitioner: under exactly_once = true the dead-letter queue writes through the sink's transactional producer, which partitions with "hash"`}},
		{"sink with other credentials", eosBase + `[sink.sasl]
mechanism = "PLAIN"
username = "u"
password = "p"
`, []string{`sink.sasl: under exactly_once = true one client consumes and produces as one user`}},
		{"not idempotent", strings.Replace(eosBase, `topic = "out"`, `topic = "out"
idempotent = false
acks = "leader"`, 1), []string{`sink.idempotent: exactly_once = true needs the idempotent producer`, `sink.acks: exactly_once = true needs acks = "all" (not "leader")`}},
		{"unbounded write", strings.Replace(eosBase, `topic = "out"`, `topic = "out"
delivery_timeout = "0s"`, 1), []string{`sink.delivery_timeout: exactly_once = true needs a bounded write`}},
		{"disk buffer", eosBase + `[sink.buffer]
type = "disk"
path = "buf"
`, []string{`sink.buffer: exactly_once = true writes inside Kafka transactions, while a disk buffer acknowledges records once on disk`}},
		{"read_uncommitted", strings.Replace(eosBase, `topics = ["in"]`, `topics = ["in"]
isolation_level = "read_uncommitted"`, 1), []string{`source.isolation_level: exactly_once = true reads read_committed`}},
		{"default retries outlast the transaction", strings.Replace(eosBase, `policy = "none"`, `policy = "backoff"`, 1),
			[]string{`exactly_once: a transaction can last 3m10s (commit_interval 5s + sink writes with every retry 3m0s + 5s to end it), longer than the source's transaction_timeout 1m30s`}},
		{"a long commit interval", strings.Replace(eosBase, `topics = ["in"]`, `topics = ["in"]
commit_interval = "2m"`, 1), []string{`source.transaction_timeout: transaction_timeout (1m30s) must be longer than commit_interval (2m0s)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := loader().Load("task.toml", []byte(tc.text))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("load failed:\n%v", err)
				}
				task.Discard(t.Context())
				return
			}
			if err == nil {
				t.Fatalf("loaded; want problems %q", tc.want)
			}
			msg := err.Error()
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("diagnostics lack (in order) %q:\n%s", w, msg)
				}
				at += i + len(w)
			}
		})
	}
}

// TestWorstWrite: the worst case of a write with every retry, per policy.
func TestWorstWrite(t *testing.T) {
	const d = 10 * time.Second
	for _, tc := range []struct {
		r    config.Retry
		want time.Duration
	}{
		{config.Retry{Policy: "none"}, d},
		{config.Retry{Policy: "backoff"}, 4*d + 60*time.Second},
		{config.Retry{Policy: "exponential"}, 24*time.Hour + d},
		{config.Retry{Policy: "custom", Attempts: 3, Initial: time.Second, Max: 3 * time.Second}, 4*d + (1+2+3)*time.Second},
		{config.Retry{Policy: "custom", Attempts: 100, Initial: time.Second, Max: time.Minute, MaxAge: 30 * time.Second}, 30*time.Second + d},
	} {
		if got := kafkaconf.WorstWrite(tc.r, d); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.r, got, tc.want)
		}
	}
}
