package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func newSource(t testing.TB, src string) *Source {
	t.Helper()
	env := componenttest.Env(t, zerolog.InfoLevel, "source")
	return componenttest.Build(t, Register, component.KindSource, "mqtt", src, env).(*Source)
}

func payload(t testing.TB, m message.Message) []byte {
	var ev struct {
		Data struct {
			Payload json.RawMessage `json:"payload"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	return ev.Data.Payload
}

func openT(t testing.TB, s component.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

// readN reads until n messages came, acking each batch when ack is set.
func readN(t testing.TB, s component.Source, n int, ack bool) []message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var out []message.Message
	for len(out) < n {
		b, err := s.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Read: %v (%d of %d read)", err, len(out), n)
			}
			continue
		}
		out = append(out, b.Messages...)
		if ack && b.Ack != nil {
			b.Ack(nil)
		}
	}
	return out
}

func TestConformance(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "conf")
	id := testkit.Unique(t, "cid")
	pub := mqtttest.Connect(t, url)
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			return newSource(t, fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n", url, topic, id))
		},
		Produce:    func(t testing.TB, bodies [][]byte) { pub.Publish(t, topic, 1, bodies...) },
		Body:       payload,
		Redelivers: true,
		Ordered:    true,
		// Mosquitto sends at most max_inflight_messages (20 by default)
		// unacknowledged messages to a client.
		Count: 15,
	})
	cleanSession(t, url, id)
}

// cleanSession removes the broker's stored session of id.
func cleanSession(t testing.TB, url, id string) {
	src := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"x\"]\nclient_id = %q\nclean_session = true\n", url, id))
	if err := src.Open(context.Background()); err == nil {
		_ = src.Close(context.Background())
	}
}

// TestEvent checks the CloudEvent of a message.
func TestEvent(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "ev")
	s := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"%s/+\"]\nclean_session = true\nclient_id = %q\n", url, topic, testkit.Unique(t, "c")))
	openT(t, s)
	pub := mqtttest.Connect(t, url)
	pub.Publish(t, topic+"/a", 1, []byte(`{"temp":21.5}`))
	pub.Publish(t, topic+"/b", 0, []byte("raw \xff"))
	msgs := readN(t, s, 2, true)
	var ev struct {
		SpecVersion string `json:"specversion"`
		ID, Source  string
		Type        string
		Subject     string
		Data        struct {
			Topic     string
			QoS       int
			Retained  bool
			Duplicate bool
			Payload   json.RawMessage
		}
	}
	if err := json.Unmarshal(msgs[0].Payload, &ev); err != nil {
		t.Fatalf("%s: %v", msgs[0].Payload, err)
	}
	if ev.Type != EventType || ev.Subject != topic+"/a" || ev.Data.Topic != topic+"/a" || ev.Data.QoS != 1 || string(ev.Data.Payload) != `{"temp":21.5}` ||
		ev.Source != url || ev.SpecVersion != "1.0" || ev.ID == "" {
		t.Fatalf("%s", msgs[0].Payload)
	}
	if string(msgs[0].Key) != topic+"/a" {
		t.Fatalf("key %q", msgs[0].Key)
	}
	if err := json.Unmarshal(msgs[1].Payload, &ev); err != nil || string(ev.Data.Payload) != `"raw \ufffd"` || ev.Data.QoS != 0 {
		t.Fatalf("%s: %v", msgs[1].Payload, err)
	}
}

// TestPersistentSession: messages published while the source is away
// arrive when it comes back; unacknowledged ones come again.
func TestPersistentSession(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "ps")
	id := testkit.Unique(t, "cid")
	t.Cleanup(func() { cleanSession(t, url, id) })
	cfg := fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n", url, topic, id)
	s := newSource(t, cfg)
	openT(t, s)
	pub := mqtttest.Connect(t, url)
	pub.Publish(t, topic, 1, []byte(`{"n":0}`), []byte(`{"n":1}`))
	got := readN(t, s, 2, false) // read, never acked
	_ = got
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Published while no client is connected: kept in the session.
	pub.Publish(t, topic, 1, []byte(`{"n":2}`), []byte(`{"n":3}`))
	s2 := newSource(t, cfg)
	openT(t, s2)
	msgs := readN(t, s2, 4, true)
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(payload(t, m)))
	}
	// The two unacknowledged ones come again, first (Mosquitto does not
	// always set their DUP flag, so the bodies tell).
	if strings.Join(bodies, "") != `{"n":0}{"n":1}{"n":2}{"n":3}` {
		t.Fatalf("got %v", bodies)
	}
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Acknowledged: not sent again.
	s3 := newSource(t, cfg)
	openT(t, s3)
	pub.Publish(t, topic, 1, []byte(`{"n":4}`))
	if m := readN(t, s3, 1, true); string(payload(t, m[0])) != `{"n":4}` {
		t.Fatalf("after the acks: %s", m[0].Payload)
	}
}

// proxiedSource opens a source on the local broker through a proxy the
// test can cut, with a topic and client id of its own (named from prefix)
// and the more keys of cfg; the session is removed at the end.
func proxiedSource(t *testing.T, prefix, cfg string) (s *Source, url, topic string, proxy *testkit.Proxy) {
	t.Helper()
	url = testkit.MQTT(t)
	topic = testkit.Unique(t, prefix)
	id := testkit.Unique(t, "cid")
	t.Cleanup(func() { cleanSession(t, url, id) })
	proxy = testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
	s = newSource(t, fmt.Sprintf("url = \"tcp://%s\"\ntopics = [%q]\nclient_id = %q\nkeep_alive = \"1s\"\n%s", proxy.Addr(), topic, id, cfg))
	openT(t, s)
	return s, url, topic, proxy
}

// receivedThenCut has pub publish {"n":0} .. {"n":n-1} at qos, waits until
// the source received them all (none read by the task yet), then cuts the
// connection and waits until the source noticed.
func receivedThenCut(t *testing.T, s *Source, proxy *testkit.Proxy, pub *mqtttest.Client, topic string, qos byte, n int) {
	t.Helper()
	for i := range n {
		pub.Publish(t, topic, qos, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	ss, err := s.current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "every message received by the source", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return len(ss.queue) == n
	})
	proxy.Cut()
	testkit.WaitFor(t, "the source to notice the lost connection", ss.isDead)
}

// readInOrder reads n messages and checks they are {"n":0} .. {"n":n-1};
// it fails (deadline) when some were dropped.
func readInOrder(t *testing.T, s *Source, n int) {
	t.Helper()
	for i, m := range readN(t, s, n, true) {
		if got, want := string(payload(t, m)), fmt.Sprintf(`{"n":%d}`, i); got != want {
			t.Fatalf("message %d is %s, want %s", i, got, want)
		}
	}
}

// TestReconnect: the connection is cut mid-stream; the source reconnects
// and every message arrives, the unacknowledged batch again.
func TestReconnect(t *testing.T) {
	s, url, topic, proxy := proxiedSource(t, "cut", "")
	pub := mqtttest.Connect(t, url)
	const n = 100
	var bodies [][]byte
	for i := range n {
		bodies = append(bodies, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		pub.Publish(t, topic, 1, bodies...)
	}()
	defer func() { <-published }()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var unacked []string
	done := func() bool {
		if len(seen) < n {
			return false
		}
		for _, u := range unacked {
			if seen[u] < 2 {
				return false
			}
		}
		return true
	}
	for !done() {
		b, err := s.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d (the unacknowledged batch %v seen %v): %v", len(seen), n, unacked, seen, err)
			}
			continue
		}
		for _, m := range b.Messages {
			seen[string(payload(t, m))]++
		}
		if unacked == nil && len(seen) >= 30 {
			// Not acked: the broker sends these again after the
			// reconnect (done waits for it).
			for _, m := range b.Messages {
				unacked = append(unacked, string(payload(t, m)))
			}
			proxy.Cut()
			proxy.Restore()
			continue
		}
		b.Ack(nil)
	}
}

// TestSharedSubscription: two sources in one $share group split the
// messages between them, each message once.
func TestSharedSubscription(t *testing.T) {
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "sh")
	group := testkit.Unique(t, "g")
	var srcs []*Source
	for i := range 2 {
		id := testkit.Unique(t, fmt.Sprintf("c%d", i))
		t.Cleanup(func() { cleanSession(t, url, id) })
		s := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"$share/%s/%s\"]\nclient_id = %q\n", url, group, topic, id))
		openT(t, s)
		srcs = append(srcs, s)
	}
	pub := mqtttest.Connect(t, url)
	const n = 60
	for i := range n {
		pub.Publish(t, topic, 1, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	counts := map[string]int{}
	per := make([]int, 2)
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b, err := s.Read(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				for _, m := range b.Messages {
					counts[string(payload(t, m))]++
				}
				per[i] += len(b.Messages)
				mu.Unlock()
				b.Ack(nil)
			}
		}()
	}
	testkit.WaitFor(t, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(counts) >= n
	})
	cancel()
	wg.Wait()
	for i := range n {
		if c := counts[fmt.Sprintf(`{"n":%d}`, i)]; c != 1 {
			t.Fatalf("message %d arrived %d times (per source: %v)", i, c, per)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("one source got everything: %v", per)
	}
}

// TestBadCredentials: a broker that refuses the login fails the task.
func TestBadCredentials(t *testing.T) {
	pw := mqtttest.PasswordFile(t, "sluice", "right")
	url := mqtttest.Mosquitto(t, "allow_anonymous false", "password_file "+pw)
	s := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"x\"]\nusername = \"sluice\"\npassword = \"wrong-pw\"\n", url))
	err := s.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("bad credentials: %v (class %s)", err, component.ClassOf(err))
	}
	ok := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"x\"]\nusername = \"sluice\"\npassword = \"right\"\nclean_session = true\n", url))
	openT(t, ok)
}

// TestACLDeniedSubscription: Mosquitto 2 grants a subscription its ACL
// denies (and filters the messages): the source must not mistake the
// grant for a refusal. A refusal (SUBACK 0x80) fails the task, which
// mqttconf's classification covers.
func TestACLDeniedSubscription(t *testing.T) {
	dir := t.TempDir()
	acl := dir + "/acl"
	writeFile(t, acl, "topic readwrite allowed/#\n")
	url := mqtttest.Mosquitto(t, "allow_anonymous true", "acl_file "+acl)
	s := newSource(t, fmt.Sprintf("url = %q\ntopics = [\"forbidden/#\", \"allowed/#\"]\nclean_session = true\n", url))
	openT(t, s)
	pub := mqtttest.Connect(t, url)
	pub.Publish(t, "allowed/x", 1, []byte(`{"ok":true}`))
	if m := readN(t, s, 1, true); string(payload(t, m[0])) != `{"ok":true}` {
		t.Fatalf("%s", m[0].Payload)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ src, path, msg string }{
		{`url = "http://h:1"` + "\ntopics = [\"a\"]", "source.url", "unsupported scheme"},
		{`url = "tcp://h:1"` + "\ntopics = [\"a/#/b\"]", "source.topics[0]", "topic filter"},
		{`url = "tcp://h:1"` + "\ntopics = [\"$share/g\"]", "source.topics[0]", "shared subscription"},
		{`url = "tcp://h:1"` + "\ntopics = [\"a\"]\nqos = 3", "source.qos", "value 3 is above the maximum"},
	} {
		_, p := componenttest.Decode(t, Register, component.KindSource, "mqtt", tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.HasPrefix(probs[0].Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.src, probs)
		}
	}
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestQoS0QueueIsBoundedInBytes: QoS 0 messages waiting for a task that
// does not read are capped in bytes as well as in number; the rest are
// dropped and counted, and the kept ones are read in order.
func TestQoS0QueueIsBoundedInBytes(t *testing.T) {
	defer func(n int) { maxQoS0Bytes = n }(maxQoS0Bytes)
	maxQoS0Bytes = 1 << 20
	url := testkit.MQTT(t)
	topic := testkit.Unique(t, "qos0")
	s := newSource(t, fmt.Sprintf("url = %q\ntopics = [%q]\nqos = 0\nclean_session = true\nclient_id = %q\n", url, topic, testkit.Unique(t, "c")))
	openT(t, s)
	const n, size = 30, 100 << 10
	pub := mqtttest.Connect(t, url)
	for i := range n {
		pub.Publish(t, topic, 0, fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", size)))
	}
	ss, _ := s.current(context.Background())
	accounted := func() (queued, bytes, dropped int) {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return len(ss.queue), ss.queued, int(s.m.dropped.Value())
	}
	testkit.WaitFor(t, "every message queued or dropped", func() bool {
		q, _, d := accounted()
		return q+d == n
	})
	q, b, d := accounted()
	if b > maxQoS0Bytes || d == 0 || q == 0 {
		t.Fatalf("%d messages queued holding %d bytes, %d dropped: want at most %d bytes queued, the rest dropped", q, b, d, maxQoS0Bytes)
	}
	msgs := readN(t, s, q, true)
	for i, m := range msgs {
		var p struct{ I int }
		if err := json.Unmarshal(payload(t, m), &p); err != nil || p.I != i {
			t.Fatalf("message %d is %d (%v): the kept messages are the first ones, in order", i, p.I, err)
		}
	}
	if _, b, _ := accounted(); b != 0 {
		t.Fatalf("%d bytes still counted as queued after reading everything", b)
	}
}
