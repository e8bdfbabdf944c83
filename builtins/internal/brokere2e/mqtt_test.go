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

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// mqttInflight is the throwaway broker's max_inflight_messages and the
// source's max_unacked: what a crash may deliver again per process.
const mqttInflight = 100

// broker starts a throwaway Mosquitto whose persistent sessions keep every
// message while their client is away (the shared broker keeps 1000).
func broker(t *testing.T) string {
	return mqtttest.Mosquitto(t, "allow_anonymous true", "max_queued_messages 0", fmt.Sprintf("max_inflight_messages %d", mqttInflight))
}

// mqttTask moves a topic to another through a template that keeps the seq.
func mqttTask(srcURL, sinkURL, topic, out, clientID, extra string) string {
	return fmt.Sprintf(`name = "mqtt"
[source]
type = "mqtt"
url = %[1]q
topics = [%[3]q]
client_id = %[5]q
keep_alive = "2s"
max_unacked = %[7]d
%[6]s
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.payload.seq" }
template = '{"id":"${id}","seq":${seq}}'
[sink]
type = "mqtt"
url = %[2]q
topic = %[4]q
qos = 1
max_inflight = %[7]d
batch = { max_events = 100 }
[retry]
policy = "custom"
attempts = 100
initial = "100ms"
max = "1s"
`, srcURL, sinkURL, topic, out, clientID, extra, mqttInflight)
}

func payloads(ms []mqtttest.Message) [][]byte {
	out := make([][]byte, len(ms))
	for i := range ms {
		out[i] = ms[i].Payload
	}
	return out
}

// publishMQTT publishes records from..to-1 at about rate per second in the
// background.
func publishMQTT(t *testing.T, c *mqtttest.Client, topic string, from, to, rate int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		const chunk = 50
		tick := time.Duration(float64(time.Second) * chunk / float64(rate))
		next := time.Now()
		for seq := from; seq < to; seq += chunk {
			c.Publish(t, topic, 1, orders(seq, min(seq+chunk, to))...)
			next = next.Add(tick)
			time.Sleep(time.Until(next)) // pacing the load, not synchronisation
		}
	}()
	return done
}

// TestMQTTFilterTransform: a filter and a template between two topics of
// the local Mosquitto, checked record by record.
func TestMQTTFilterTransform(t *testing.T) {
	skipShort(t)
	url := testkit.MQTT(t)
	in, out := testkit.Unique(t, "in"), testkit.Unique(t, "out")
	id := testkit.Unique(t, "cid")
	t.Cleanup(func() { endSession(t, url, id) })
	const n = 300
	task := writeTask(t, fmt.Sprintf(`name = "eu-big"
[source]
type = "mqtt"
url = %[1]q
topics = ["%[2]s/+"]
client_id = %[4]q
[filter]
condition = 'data.payload.items > 0'
[filter.pattern.data.payload]
region = [{ prefix = "eu-" }]
amount = [{ numeric = [">", 100] }]
[[transform]]
type = "template"
variables = { order = "$.data.payload.order_id", amount = "$.data.payload.amount", region = "$.data.payload.region", seq = "$.data.payload.seq" }
template = '{"seq":${seq},"order":"${order}","amount":${amount},"region":"${region}"}'
[sink]
type = "mqtt"
url = %[1]q
topic = "%[3]s/${region}"
variables = { region = "$.data.payload.region" }
qos = 2
`, url, in, out, id))
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
	col := mqtttest.Connect(t, url).Subscribe(t, out+"/#", 2)
	p := run(t, "sluice", nil, task)
	p.WaitLog(t, "mqtt source subscribed")
	pub := mqtttest.Connect(t, url)
	for i := range n {
		pub.Publish(t, fmt.Sprintf("%s/dev%d", in, i%7), 1, order(i))
	}
	testkit.WaitFor(t, "the matching records", func() bool { return len(col.All()) >= len(want) })
	p.Stop(t)
	got := col.All()
	if len(got) != len(want) {
		t.Fatalf("%d records arrived, want %d", len(got), len(want))
	}
	for i, m := range got {
		var o struct{ Region string }
		_ = json.Unmarshal(m.Payload, &o)
		if string(m.Payload) != want[i] || m.Topic != out+"/"+o.Region {
			t.Fatalf("record %d: %s on %s, want %s", i, m.Payload, m.Topic, want[i])
		}
	}
}

// endSession removes the broker's stored session of id.
func endSession(t testing.TB, url, id string) {
	c := mqtttest.ConnectID(t, url, id, true)
	c.C.Disconnect(100)
}

// TestMQTTKill9: SIGKILL a running sluice several times under load; the
// persistent session keeps what is published while it is down; after a
// last clean run every record arrived, with at most the broker's in-flight
// window of duplicates per kill.
func TestMQTTKill9(t *testing.T) {
	skipShort(t)
	url := broker(t)
	in, out := "in/orders", "out/orders"
	const n, kills = 5000, 3
	col := mqtttest.Connect(t, url).Subscribe(t, out, 1)
	task := writeTask(t, mqttTask(url, url, in, out, "sluice-kill9", ""))
	// The first run creates the session; from then on the broker keeps
	// messages for it.
	p := run(t, "sluice-0", nil, task)
	p.WaitLog(t, "mqtt source subscribed")
	pub := mqtttest.Connect(t, url)
	done := publishMQTT(t, pub, in, 0, n, 1500)
	for k := range kills {
		before := len(col.All())
		testkit.WaitFor(t, "progress before the kill", func() bool { return len(col.All()) > before+300 })
		p.Kill()
		p = run(t, fmt.Sprintf("sluice-%d", k+1), nil, task)
	}
	<-done
	testkit.WaitFor(t, "every record", func() bool { return len(tally(t, payloads(col.All()))) >= n })
	p.Stop(t)
	dups := checkAll(t, tally(t, payloads(col.All())), n)
	t.Logf("%d records, %d kills, %d duplicates", n, kills, dups)
	// Per kill: what was handed out and not acknowledged (max_unacked),
	// plus acknowledgements sent but lost with the connection.
	if dups > 2*kills*mqttInflight {
		t.Fatalf("%d duplicates after %d kills; the window is max_unacked (%d) per kill, plus acknowledgements in transit", dups, kills, mqttInflight)
	}
}

// TestMQTTPublishedWhileDown: what is published while no sluice runs
// arrives when it comes back.
func TestMQTTPublishedWhileDown(t *testing.T) {
	skipShort(t)
	url := broker(t)
	col := mqtttest.Connect(t, url).Subscribe(t, "out", 1)
	task := writeTask(t, mqttTask(url, url, "in", "out", "sluice-down", ""))
	p := run(t, "sluice-1", nil, task)
	p.WaitLog(t, "mqtt source subscribed")
	pub := mqtttest.Connect(t, url)
	pub.Publish(t, "in", 1, orders(0, 100)...)
	testkit.WaitFor(t, "the first records", func() bool { return len(col.All()) >= 100 })
	p.Stop(t)
	pub.Publish(t, "in", 1, orders(100, 2100)...) // 2000: more than the shared broker would keep
	p = run(t, "sluice-2", nil, task)
	testkit.WaitFor(t, "the records published while down", func() bool { return len(col.All()) >= 2100 })
	p.Stop(t)
	if dups := checkAll(t, tally(t, payloads(col.All())), 2100); dups != 0 {
		t.Fatalf("%d duplicates across a clean stop", dups)
	}
}

// TestMQTTSharedSubscription: two processes in one $share group split the
// records, each record once.
func TestMQTTSharedSubscription(t *testing.T) {
	skipShort(t)
	url := broker(t)
	col := mqtttest.Connect(t, url).Subscribe(t, "out", 1)
	task := writeTask(t, mqttTask(url, url, "$share/workers/in", "out", "sluice-${env:WORKER}", ""))
	p1 := run(t, "sluice-1", []string{"WORKER=1"}, task)
	p2 := run(t, "sluice-2", []string{"WORKER=2"}, task)
	p1.WaitLog(t, "mqtt source subscribed")
	p2.WaitLog(t, "mqtt source subscribed")
	const n = 2000
	<-publishMQTT(t, mqtttest.Connect(t, url), "in", 0, n, 4000)
	testkit.WaitFor(t, "every record", func() bool { return len(col.All()) >= n })
	p1.Stop(t)
	p2.Stop(t)
	got := col.All()
	if dups := checkAll(t, tally(t, payloads(got)), n); dups != 0 {
		t.Fatalf("%d duplicates without a failure", dups)
	}
	per := map[string]int{}
	for _, m := range got {
		var o struct{ ID string }
		_ = json.Unmarshal(m.Payload, &o)
		per[strings.SplitN(o.ID, "-", 3)[1]]++
	}
	if len(per) != 2 {
		t.Fatalf("records per process: %v; want both processes to take part", per)
	}
}

// TestMQTTCutMidStream: source and sink connections go through a proxy
// that cuts them mid-stream; both reconnect and every record arrives.
func TestMQTTCutMidStream(t *testing.T) {
	skipShort(t)
	url := broker(t)
	proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
	purl := "tcp://" + proxy.Addr()
	col := mqtttest.Connect(t, url).Subscribe(t, "out", 1)
	p := run(t, "sluice", nil, writeTask(t, mqttTask(purl, purl, "in", "out", "sluice-cut", "")))
	p.WaitLog(t, "mqtt source subscribed")
	const n = 3000
	done := publishMQTT(t, mqtttest.Connect(t, url), "in", 0, n, 1500)
	for range 2 {
		before := len(col.All())
		testkit.WaitFor(t, "progress before the cut", func() bool { return len(col.All()) > before+300 })
		proxy.Cut()
		proxy.Restore()
	}
	<-done
	testkit.WaitFor(t, "every record", func() bool { return len(tally(t, payloads(col.All()))) >= n })
	p.WaitLog(t, "mqtt source reconnected")
	p.Stop(t)
	dups := checkAll(t, tally(t, payloads(col.All())), n)
	t.Logf("%d duplicates after 2 cuts", dups)
}

// TestMQTTStartFailed: refused credentials stop the task in StartFailed,
// saying what to change.
func TestMQTTStartFailed(t *testing.T) {
	skipShort(t)
	pw := mqtttest.PasswordFile(t, "sluice", "right")
	url := mqtttest.Mosquitto(t, "allow_anonymous false", "password_file "+pw)
	task := mqttTask(url, url, "in", "out", "sluice-auth", "username = \"sluice\"\npassword = \"wrong-pw\"")
	p := run(t, "sluice", nil, writeTask(t, task))
	select {
	case <-p.Done():
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		t.Fatal("sluice did not stop")
	}
	if p.Err() == nil || !p.LogHas("refused the login") || !p.LogHas("fix username and password") || !p.LogHas("task failed") || p.LogHas("wrong-pw") {
		p.DumpLog(t)
		t.Fatalf("exit %v; want a StartFailed task saying to fix the login", p.Err())
	}
}

// TestMQTTToKafka is the edge-to-cloud bridge: device messages from MQTT
// to a Kafka topic, keyed by MQTT topic; every record once.
func TestMQTTToKafka(t *testing.T) {
	skipShort(t)
	url := broker(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 3, "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	task := writeTask(t, fmt.Sprintf(`name = "edge-to-cloud"
[source]
type = "mqtt"
url = %q
topics = ["devices/+/telemetry"]
client_id = "sluice-bridge"
[[transform]]
type = "template"
variables = { id = "$.id", seq = "$.data.payload.seq", device = "$.data.topic" }
template = '{"id":"${id}","seq":${seq},"device":"${device}"}'
[sink]
type = "kafka"
brokers = [%q]
topic = "telemetry"
`, url, c.Addr()))
	p := run(t, "sluice", nil, task)
	p.WaitLog(t, "mqtt source subscribed")
	pub := mqtttest.Connect(t, url)
	const n = 2000
	for i := 0; i < n; i += 100 {
		for d := range 4 {
			var batch [][]byte
			for s := i; s < i+100; s++ {
				if s%4 == d {
					batch = append(batch, order(s))
				}
			}
			pub.Publish(t, fmt.Sprintf("devices/d%d/telemetry", d), 1, batch...)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("telemetry"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got [][]byte
	var keys atomic.Int64
	testkit.WaitFor(t, "every record in Kafka", func() bool {
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer pcancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			got = append(got, r.Value)
			if strings.HasPrefix(string(r.Key), "devices/d") {
				keys.Add(1)
			}
		})
		return len(got) >= n
	})
	p.Stop(t)
	if dups := checkAll(t, tally(t, got), n); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	if keys.Load() != n {
		t.Fatalf("%d of %d Kafka records are keyed by their MQTT topic", keys.Load(), n)
	}
}
