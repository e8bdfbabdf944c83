package kafkaconf

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// Endpoint is what CheckExactlyOnce needs to know about one Kafka end of a
// task. The source fills the source fields, a sink the sink fields.
type Endpoint struct {
	Conn Conn

	// Source.
	IsolationLevel     string // "" (default), read_uncommitted or read_committed
	CommitInterval     time.Duration
	TransactionTimeout time.Duration

	// Sink (and Kafka dead-letter sink).
	Acks            string
	Idempotent      bool
	Partitioner     string
	DeliveryTimeout time.Duration
}

// Endpointer is implemented by the Kafka source and sink configs.
type Endpointer interface {
	KafkaEndpoint() Endpoint
}

// endOfCycleMargin is what CheckExactlyOnce keeps free in a transaction for
// ending it (one TxnOffsetCommit, one heartbeat, one EndTxn).
const endOfCycleMargin = 5 * time.Second

// CheckExactlyOnce is a config.Loader task check. When a task sets
// exactly_once = true it rejects what cannot keep the promise that a crash
// neither loses nor duplicates records for read_committed readers:
//
//   - a source or sink that is not Kafka, or a dead-letter queue that is not
//     Kafka (no dead-letter queue is fine);
//   - a sink or dead-letter queue on another cluster than the source, or with
//     other credentials (one transactional client consumes and produces for
//     the task, so it can only reach one cluster as one user);
//   - a sink that is not idempotent with acks = "all" (transactions need
//     both), or a dead-letter queue partitioned differently from the sink
//     (they share the producer);
//   - a source with isolation_level = "read_uncommitted" (it would process
//     records of aborted upstream transactions);
//   - a sink write that is not bounded (delivery_timeout = "0s");
//   - a disk buffer in front of the sink (it acknowledges outside the
//     transaction);
//   - a cycle whose worst case outlasts the transaction timeout:
//     commit_interval, plus the worst case of a sink write with every retry
//     of the task's [retry] policy, plus the same for the dead-letter queue,
//     plus 5 s to end the transaction, must fit in transaction_timeout;
//     otherwise a retry that succeeds would land in a transaction the
//     brokers already aborted, and the task could make no progress.
func CheckExactlyOnce(t *config.Task, p *component.Problems) {
	if !t.ExactlyOnce {
		return
	}
	src, ok := endpointOf(&t.Source)
	if !ok {
		p.Addf([]string{"exactly_once"}, "exactly_once = true needs a kafka source (its offsets commit inside the transaction), not %q: remove exactly_once or read from Kafka", t.Source.Type)
	}
	sink, sinkOK := endpointOf(&t.Sink)
	if !sinkOK {
		p.Addf([]string{"exactly_once"}, "exactly_once = true needs a kafka sink (its records are written inside the transaction), not %q: remove exactly_once or write to Kafka", t.Sink.Type)
	}
	var dlq Endpoint
	dlqOK := t.DeadLetter == nil
	if t.DeadLetter != nil {
		dlq, dlqOK = endpointOf(t.DeadLetter)
		if !dlqOK {
			p.Addf([]string{"dead_letter", "type"}, "under exactly_once = true the dead-letter queue must be kafka on the sink's cluster (it is written inside the transaction), not %q; or remove [dead_letter]", t.DeadLetter.Type)
		}
	}
	if ok {
		if src.IsolationLevel == "read_uncommitted" {
			p.Addf([]string{"source", "isolation_level"}, "exactly_once = true reads read_committed (records of aborted transactions must not be processed); remove isolation_level or set it to \"read_committed\"")
		}
		if src.TransactionTimeout <= src.CommitInterval {
			p.Addf([]string{"source", "transaction_timeout"}, "transaction_timeout (%s) must be longer than commit_interval (%s): each transaction lasts at least one commit_interval", src.TransactionTimeout, src.CommitInterval)
		}
	}
	if ok && sinkOK {
		sameConn(p, "sink", "the source's", src.Conn, sink.Conn)
	}
	if t.Engine.Buffer != nil {
		p.Addf([]string{"sink", "buffer"}, "exactly_once = true writes inside Kafka transactions, while a disk buffer acknowledges records once on disk, outside them: remove [sink.buffer] (the brokers keep the records during an outage) or exactly_once")
	}
	if sinkOK {
		if !sink.Idempotent {
			p.Addf([]string{"sink", "idempotent"}, "exactly_once = true needs the idempotent producer: remove idempotent = false")
		}
		if sink.Acks != "all" {
			p.Addf([]string{"sink", "acks"}, "exactly_once = true needs acks = \"all\" (not %q)", sink.Acks)
		}
		if sink.DeliveryTimeout <= 0 {
			p.Addf([]string{"sink", "delivery_timeout"}, "exactly_once = true needs a bounded write: set delivery_timeout (e.g. \"30s\"); \"0s\" could wait past the transaction timeout")
		}
	}
	if t.DeadLetter != nil && dlqOK {
		if sinkOK {
			both := sink.Conn
			if ok {
				both.Brokers = append(slices.Clone(src.Conn.Brokers), sink.Conn.Brokers...)
			}
			sameConn(p, "dead_letter", "the source's and sink's", both, dlq.Conn)
			if dlq.Partitioner != sink.Partitioner {
				p.Addf([]string{"dead_letter", "partitioner"}, "under exactly_once = true the dead-letter queue writes through the sink's transactional producer, which partitions with %q: use the same partitioner", sink.Partitioner)
			}
		}
		if dlq.DeliveryTimeout <= 0 {
			p.Addf([]string{"dead_letter", "delivery_timeout"}, "exactly_once = true needs a bounded write: set delivery_timeout (e.g. \"30s\"); \"0s\" could wait past the transaction timeout")
		}
	}
	if !ok || !sinkOK || sink.DeliveryTimeout <= 0 || src.TransactionTimeout <= src.CommitInterval {
		return
	}
	worst := src.CommitInterval + WorstWrite(t.Retry, sink.DeliveryTimeout) + endOfCycleMargin
	what := fmt.Sprintf("commit_interval %s + sink writes with every retry %s", src.CommitInterval, WorstWrite(t.Retry, sink.DeliveryTimeout))
	if t.DeadLetter != nil && dlqOK && dlq.DeliveryTimeout > 0 {
		worst += WorstWrite(t.Retry, dlq.DeliveryTimeout)
		what += fmt.Sprintf(" + dead-letter writes %s", WorstWrite(t.Retry, dlq.DeliveryTimeout))
	}
	if worst > src.TransactionTimeout {
		p.Addf([]string{"exactly_once"}, "a transaction can last %s (%s + %s to end it), longer than the source's transaction_timeout %s, after which the brokers abort it: "+
			"set [retry] policy = \"none\" (an aborted transaction is read again, which is the retry), or a custom policy with a short max_age, or lower the sinks' delivery_timeout, or raise transaction_timeout (brokers cap it at transaction.max.timeout.ms, 15m by default)",
			worst, what, endOfCycleMargin, src.TransactionTimeout)
	}
}

// WorstWrite is the longest a sink write can take with every retry of r,
// each write bounded by timeout.
func WorstWrite(r config.Retry, timeout time.Duration) time.Duration {
	var attempts int
	var waits time.Duration
	switch r.Policy {
	case "none":
	case "backoff", "":
		// 3 retries, each after at most 20 s (delivery.Backoff).
		attempts, waits = 3, 3*20*time.Second
	case "exponential":
		attempts, waits = 176, 24*time.Hour
	default:
		attempts = r.Attempts
		d := r.Initial
		for range r.Attempts {
			waits += min(d, r.Max)
			if waits > 24*time.Hour {
				break
			}
			d *= 2 // the engine grows custom intervals by 2
		}
	}
	total := time.Duration(attempts+1)*timeout + waits
	maxAge := r.MaxAge
	if r.Policy == "exponential" {
		maxAge = 24 * time.Hour
	}
	if maxAge > 0 {
		total = min(total, maxAge+timeout)
	}
	return total
}

func endpointOf(c *config.Component) (Endpoint, bool) {
	if c == nil || c.Type != "kafka" {
		return Endpoint{}, false
	}
	e, ok := c.Config.(Endpointer)
	if !ok {
		return Endpoint{}, false
	}
	return e.KafkaEndpoint(), true
}

// sameConn reports, under the table at, what in b differs from a in a way
// one client cannot serve: another cluster (no bootstrap broker in common)
// or other credentials.
func sameConn(p *component.Problems, at, whose string, a, b Conn) {
	shared := false
	for _, x := range b.Brokers {
		if slices.Contains(a.Brokers, x) {
			shared = true
			break
		}
	}
	if !shared {
		p.Addf([]string{at, "brokers"}, "under exactly_once = true one transaction covers the whole task, so it must stay on one cluster: brokers %q share no address with %s %q", b.Brokers, whose, a.Brokers)
	}
	if !reflect.DeepEqual(a.SASL, b.SASL) {
		p.Addf([]string{at, "sasl"}, "under exactly_once = true one client consumes and produces as one user: give [%s.sasl] the same settings as %s (or leave both out)", at, whose)
	}
	if !reflect.DeepEqual(a.TLS, b.TLS) {
		p.Addf([]string{at, "tls"}, "under exactly_once = true one client consumes and produces over one connection: give [%s.tls] the same settings as %s (or leave both out)", at, whose)
	}
}
