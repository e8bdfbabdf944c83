// Package mqtttest helps tests talk to MQTT brokers: a client of the test
// publishing and collecting messages outside Sluice, and a throwaway
// Mosquitto with settings of the test's own (a password file, larger
// queues) for what the shared broker is not configured for. Only test
// binaries import it.
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// Client is a test's MQTT client.
type Client struct {
	URL string
	C   paho.Client
}

// Connect connects a clean-session client with a unique id to url; it is
// disconnected at the end of the test.
func Connect(t testing.TB, url string) *Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(testkit.Unique(t, "test")).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(testkit.Scale(testkit.DefaultWait)) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &Client{URL: url, C: c}
}

// Publish publishes bodies to topic at qos and waits for the broker's
// acknowledgements.
func (c *Client) Publish(t testing.TB, topic string, qos byte, bodies ...[]byte) {
	t.Helper()
	toks := make([]paho.Token, len(bodies))
	for i, b := range bodies {
		toks[i] = c.C.Publish(topic, qos, false, b)
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(testkit.Scale(testkit.DefaultWait)) || tok.Error() != nil {
			t.Fatalf("publish to %s: %v", topic, tok.Error())
		}
	}
}

// Message is one message a Collector received.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Collector holds what a subscription received.
type Collector struct {
	mu   sync.Mutex
	msgs []Message
}

// All returns the messages received so far.
func (c *Collector) All() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Subscribe subscribes to filter at qos and collects what arrives.
func (c *Client) Subscribe(t testing.TB, filter string, qos byte) *Collector {
	t.Helper()
	col := &Collector{}
	tok := c.C.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), QoS: m.Qos(), Retained: m.Retained()})
		col.mu.Unlock()
	})
	if !tok.WaitTimeout(testkit.Scale(testkit.DefaultWait)) || tok.Error() != nil {
		t.Fatalf("subscribe to %s: %v", filter, tok.Error())
	}
	return col
}

// Mosquitto starts a throwaway broker on a free loopback port with the
// extra configuration lines, and returns its URL ("tcp://127.0.0.1:port").
// It stops at the end of the test. Skips (or fails under
// SLUICE_INTEGRATION=1) when mosquitto is not installed.
func Mosquitto(t testing.TB, conf ...string) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	text := fmt.Sprintf("listener %s 127.0.0.1\npersistence false\nlog_dest stderr\n", port)
	if os.Geteuid() == 0 {
		// As root, mosquitto drops to its own user, which cannot read the
		// test's files.
		text += "user root\n"
	}
	for _, l := range conf {
		text += l + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.RunServer(t, "mosquitto", addr, "-c", path)
	return "tcp://" + addr
}

// PasswordFile writes a mosquitto password file with user and password and
// returns its path.
func PasswordFile(t testing.TB, user, password string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	out, err := exec.Command("mosquitto_passwd", "-b", "-c", path, user, password).CombinedOutput()
	if err != nil {
		t.Skipf("mosquitto_passwd: %v %s", err, out)
	}
	_ = os.Chmod(path, 0o600)
	return path
}

// ConnectID connects a client with id and the clean-session flag to url;
// it is disconnected at the end of the test.
func ConnectID(t testing.TB, url, id string, clean bool) *Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(testkit.Scale(testkit.DefaultWait)) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &Client{URL: url, C: c}
}
