package brokere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/amqptest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/testkit"
)

const rmqPrefetch = 200

// rmqTask moves a queue to another through a template that keeps the
// event id and seq. extra goes at the end of [source].
func rmqTask(srcURL, sinkURL, in, out, extra string) string {
	return fmt.Sprintf(`name = "rmq"
[source]
type = "rabbitmq"
url = %[1]q
queue = %[3]q
prefetch = %[5]d
heartbeat = "2s"
%[6]s
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.body.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "rabbitmq"
url = %[2]q
queue = %[4]q
heartbeat = "2s"
batch = { max_events = 100 }
[retry]
policy = "custom"
attempts = 100
initial = "100ms"
max = "1s"
`, srcURL, sinkURL, in, out, rmqPrefetch, extra)
}

// TestRabbitMQFilterTransform: a filter (pattern and condition) and a
// template between two queues, checked record by record: exactly the
// matching records arrive, once each, with the expected content, in order.
func TestRabbitMQFilterTransform(t *testing.T) {
	skipShort(t)
	b := amqptest.Connect(t)
	in, out := b.Queue(t, "in"), b.Queue(t, "out")
	const n = 400
	b.Publish(t, in, orders(0, n)...)
	task := writeTask(t, fmt.Sprintf(`name = "eu-big"
[source]
type = "rabbitmq"
url = %[1]q
queue = %[2]q
[filter]
condition = 'data.body.items > 0'
[filter.pattern.data.body]
region = [{ prefix = "eu-" }]
amount = [{ numeric = [">", 100] }]
[[transform]]
type = "template"
variables = { order = "$.data.body.order_id", amount = "$.data.body.amount", region = "$.data.body.region", seq = "$.data.body.seq" }
template = '{"seq":${seq},"order":"${order}","amount":${amount},"region":"${region}"}'
[sink]
type = "rabbitmq"
url = %[1]q
queue = %[3]q
message_id = "${order}"
headers = { region = "${region}" }
variables = { order = "$.data.body.order_id", region = "$.data.body.region" }
`, b.URL, in, out))
	var want []string
	for i := range n {
		var v struct {
			Region string
			Amount int
			Items  int
		}
		_ = json.Unmarshal(order(i), &v)
		if strings.HasPrefix(v.Region, "eu-") && v.Amount > 100 && v.Items > 0 {
			want = append(want, fmt.Sprintf(`{"seq":%d,"order":"o-%d","amount":%d,"region":"%s"}`, i, i, v.Amount, v.Region))
		}
	}
	if len(want) < 50 || len(want) > n/2 {
		t.Fatalf("the input matches %d records; the test wants a real filter", len(want))
	}
	p := run(t, "sluice", nil, task)
	got := amqptest.Collect(t, b.URL, out)
	testkit.WaitFor(t, "the matching records", func() bool { return len(got()) >= len(want) })
	testkit.WaitFor(t, "the input queue to be acknowledged", func() bool { return b.Depth(t, in) == 0 })
	p.Stop(t)
	ds := got()
	if len(ds) != len(want) {
		t.Fatalf("%d records arrived, want %d", len(ds), len(want))
	}
	for i, d := range ds {
		if string(d.Body) != want[i] {
			t.Fatalf("record %d: %s, want %s", i, d.Body, want[i])
		}
		var o struct{ Order, Region string }
		_ = json.Unmarshal(d.Body, &o)
		if d.MessageId != o.Order || d.Headers["region"] != o.Region || d.DeliveryMode != 2 {
			t.Fatalf("record %d: message id %q headers %v mode %d", i, d.MessageId, d.Headers, d.DeliveryMode)
		}
	}
}

// publishLoad publishes records from..to-1 to queue at about rate per
// second in the background; the returned channel closes when done.
func publishLoad(t *testing.T, b *amqptest.Broker, queue string, from, to, rate int) (<-chan struct{}, *atomic.Int64) {
	done := make(chan struct{})
	sent := &atomic.Int64{}
	go func() {
		defer close(done)
		const chunk = 100
		tick := time.Duration(float64(time.Second) * chunk / float64(rate))
		next := time.Now()
		for seq := from; seq < to; seq += chunk {
			b.Publish(t, queue, orders(seq, min(seq+chunk, to))...)
			sent.Add(int64(min(seq+chunk, to) - seq))
			next = next.Add(tick)
			time.Sleep(time.Until(next)) // pacing the load, not synchronisation
		}
	}()
	return done, sent
}

// TestRabbitMQKill9: SIGKILL a running sluice several times under load;
// after a last clean run every record arrived, with at most prefetch
// duplicates per kill (what was delivered but not acknowledged).
func TestRabbitMQKill9(t *testing.T) {
	skipShort(t)
	b := amqptest.Connect(t)
	in, out := b.Queue(t, "in"), b.Queue(t, "out")
	const n, kills = 6000, 3
	got := amqptest.Collect(t, b.URL, out)
	done, _ := publishLoad(t, b, in, 0, n, 2000)
	task := writeTask(t, rmqTask(b.URL, b.URL, in, out, ""))
	for k := range kills {
		p := run(t, fmt.Sprintf("sluice-%d", k), nil, task)
		before := len(got())
		testkit.WaitFor(t, "progress before the kill", func() bool { return len(got()) > before+300 })
		p.Kill()
	}
	<-done
	p := run(t, "sluice-last", nil, task)
	testkit.WaitFor(t, "every record", func() bool { return len(tally(t, bodies(got()))) >= n })
	testkit.WaitFor(t, "the input queue to be acknowledged", func() bool { return b.Depth(t, in) == 0 })
	p.Stop(t)
	dups := checkAll(t, tally(t, bodies(got())), n)
	t.Logf("%d records, %d kills, %d duplicates", n, kills, dups)
	if dups > kills*rmqPrefetch {
		t.Fatalf("%d duplicates after %d kills; the window is prefetch (%d) per kill", dups, kills, rmqPrefetch)
	}
}

// TestRabbitMQTwoProcesses: two processes on one queue share its records;
// every record arrives once.
func TestRabbitMQTwoProcesses(t *testing.T) {
	skipShort(t)
	b := amqptest.Connect(t)
	in, out := b.Queue(t, "in"), b.Queue(t, "out")
	const n = 3000
	got := amqptest.Collect(t, b.URL, out)
	task := writeTask(t, rmqTask(b.URL, b.URL, in, out, "")+"\n")
	p1 := run(t, "sluice-1", []string{"WORKER=1"}, task)
	p2 := run(t, "sluice-2", []string{"WORKER=2"}, task)
	p1.WaitLog(t, "rabbitmq source consuming")
	p2.WaitLog(t, "rabbitmq source consuming")
	done, _ := publishLoad(t, b, in, 0, n, 3000)
	<-done
	testkit.WaitFor(t, "every record", func() bool { return len(got()) >= n })
	testkit.WaitFor(t, "the input queue to be acknowledged", func() bool { return b.Depth(t, in) == 0 })
	p1.Stop(t)
	p2.Stop(t)
	ds := got()
	if dups := checkAll(t, tally(t, bodies(ds)), n); dups != 0 {
		t.Fatalf("%d duplicates without a failure", dups)
	}
	// The event ids name the consuming session: both processes worked.
	sessions := map[string]int{}
	for _, d := range ds {
		var o struct{ ID string }
		_ = json.Unmarshal(d.Body, &o)
		sessions[o.ID[:strings.LastIndex(o.ID, "-")]]++
	}
	if len(sessions) < 2 {
		t.Fatalf("one process did all the work: %v", sessions)
	}
}

// TestRabbitMQCutMidStream: the connections of source and sink go through
// a proxy that cuts them mid-stream; both reconnect and every record
// arrives.
func TestRabbitMQCutMidStream(t *testing.T) {
	skipShort(t)
	b := amqptest.Connect(t)
	in, out := b.Queue(t, "in"), b.Queue(t, "out")
	proxy := testkit.NewProxy(t, strings.TrimSuffix(strings.TrimPrefix(b.URL, "amqp://guest:guest@"), "/"))
	purl := "amqp://guest:guest@" + proxy.Addr() + "/"
	const n = 4000
	got := amqptest.Collect(t, b.URL, out)
	p := run(t, "sluice", nil, writeTask(t, rmqTask(purl, purl, in, out, "")))
	done, _ := publishLoad(t, b, in, 0, n, 2000)
	for range 2 {
		before := len(got())
		testkit.WaitFor(t, "progress before the cut", func() bool { return len(got()) > before+500 })
		proxy.Cut()
		proxy.Restore()
	}
	<-done
	testkit.WaitFor(t, "every record", func() bool { return len(tally(t, bodies(got()))) >= n })
	testkit.WaitFor(t, "the input queue to be acknowledged", func() bool { return b.Depth(t, in) == 0 })
	p.WaitLog(t, "rabbitmq source reconnected")
	p.Stop(t)
	dups := checkAll(t, tally(t, bodies(got())), n)
	t.Logf("%d duplicates after 2 cuts", dups)
}

// TestRabbitMQStartFailed: refused credentials and a missing queue stop the
// task in StartFailed, saying what to change.
func TestRabbitMQStartFailed(t *testing.T) {
	skipShort(t)
	url := testkit.RabbitMQ(t)
	bad := strings.Replace(url, "guest:guest@", "guest:not-the-password@", 1)
	for _, tc := range []struct{ name, task, want string }{
		{"credentials", rmqTask(bad, url, "q", "q2", ""), "refused the login: fix the user name or password in url"},
		{"queue", rmqTask(url, url, testkit.Unique(t, "missing"), "q2", "declare = false"), "create it, fix `queue`, or set declare = true"},
	} {
		p := run(t, tc.name, nil, writeTask(t, tc.task))
		select {
		case <-p.Done():
		case <-time.After(testkit.Scale(testkit.DefaultWait)):
			t.Fatalf("%s: sluice did not stop", tc.name)
		}
		if p.Err() == nil || !p.LogHas(tc.want) || !p.LogHas("task failed") {
			p.DumpLog(t)
			t.Fatalf("%s: exit %v; want a StartFailed task saying %q", tc.name, p.Err(), tc.want)
		}
		if p.LogHas("not-the-password") {
			t.Fatalf("%s: the log shows the password", tc.name)
		}
	}
}

// TestKafkaToRabbitMQ is the bridge from Kafka to RabbitMQ: every record
// of a topic reaches the queue once, in order per partition.
func TestKafkaToRabbitMQ(t *testing.T) {
	skipShort(t)
	b := amqptest.Connect(t)
	out := b.Queue(t, "out")
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 3, "orders")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 2000
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "orders", Key: fmt.Appendf(nil, "k%d", i%16), Value: order(i)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	task := writeTask(t, fmt.Sprintf(`name = "kafka-to-rabbitmq"
[source]
type = "kafka"
brokers = [%q]
topics = ["orders"]
offset = "earliest"
fetch_max_wait = "100ms"
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.value.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "rabbitmq"
url = %q
exchange = "amq.direct"
routing_key = "${key}"
variables = { key = "$.data.key" }
`, c.Addr(), b.URL))
	// One queue per key range would be the usual layout; the test binds
	// every key to one queue and checks counts.
	for k := range 16 {
		if err := b.Ch.QueueBind(out, fmt.Sprintf("k%d", k), "amq.direct", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := amqptest.Collect(t, b.URL, out)
	p := run(t, "sluice", nil, task)
	testkit.WaitFor(t, "every record in RabbitMQ", func() bool { return len(got()) >= n })
	p.Stop(t)
	if dups := checkAll(t, tally(t, bodies(got())), n); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
}
