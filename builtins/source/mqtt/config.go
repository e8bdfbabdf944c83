// Package mqtt is the `mqtt` source: it subscribes to topics with paho
// (MQTT 3.1.1) in a persistent session and wraps each message in a
// CloudEvent. QoS 1 and 2 messages are acknowledged (PUBACK, PUBREC) only
// once they and every message received before them were delivered,
// filtered or dead-lettered, in the order they arrived; what is not
// acknowledged when the connection ends the broker sends again, and what
// was published while Sluice was away waits in its session.
// docs/connectors/mqtt.md is the user reference.
package mqtt

import (
	"time"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/builtins/internal/mqttconf"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [source] table of `type = "mqtt"`.
type Config struct {
	URL            string             `toml:"url" required:"true" doc:"Broker URL: \"tcp://host:1883\" (also mqtt://), \"ssl://host:8883\" for TLS (also tls://, mqtts://), \"ws://host/mqtt\" or wss:// for WebSocket."`
	Username       string             `toml:"username" doc:"User name to log in with."`
	Password       component.Secret   `toml:"password" doc:"Password to log in with; write \"${env:MQTT_PASSWORD}\" to keep it out of the file."`
	TLS            *tlsconf.Client    `toml:"tls" doc:"TLS settings for ssl:// and wss:// URLs."`
	ClientID       string             `toml:"client_id" doc:"Client id, the name of the persistent session: keep it stable across restarts, and unique per process (two clients with one id disconnect each other). Default: \"sluice-<task>\"."`
	CleanSession   bool               `toml:"clean_session" doc:"Start a new session on every connect: messages published while Sluice is away are lost, and unacknowledged ones are not sent again. Off (the default): a persistent session."`
	KeepAlive      component.Duration `toml:"keep_alive" doc:"MQTT keep-alive: a connection silent for about 1.5 times this long is considered dead and reopened."`
	ConnectTimeout component.Duration `toml:"connect_timeout" doc:"Longest time to connect and log in."`

	Topics        []string `toml:"topics" required:"true" doc:"Topic filters to subscribe to, wildcards allowed (\"sensors/+/temperature\", \"plant/#\"). \"$share/<group>/<filter>\" is a shared subscription: the broker spreads its messages over the group's clients, to scale out over several processes."`
	QoS           int      `toml:"qos" min:"0" max:"2" doc:"Subscription QoS: 1 (at least once, the default) and 2 are acknowledged after delivery and sent again after a crash; 0 is at most once (nothing is acknowledged, a crash loses what was in flight)."`
	MaxUnacked    int      `toml:"max_unacked" min:"1" max:"1000000" doc:"Most QoS 1 and 2 messages handed to the task and not acknowledged yet; past it the source waits for acknowledgements. It bounds what a crash delivers twice, whatever the broker's own window (Mosquitto's max_inflight_messages is not a strict bound)."`
	PayloadFormat string   `toml:"payload_format" enum:"json,text,base64" doc:"How data.payload holds the message payload: json (parsed, so patterns reach data.payload.*; a payload that is not JSON stays a string), text (a string; invalid UTF-8 becomes U+FFFD), base64 (a Base64 string, for binary payloads)."`
}

func newConfig() any {
	return &Config{
		KeepAlive:      component.Duration(30 * time.Second),
		ConnectTimeout: component.Duration(10 * time.Second),
		QoS:            1,
		MaxUnacked:     1000,
		PayloadFormat:  eventenc.FormatJSON,
	}
}

// Validate checks what the tags cannot. It does no I/O.
func (c *Config) Validate(p *component.Problems) {
	mqttconf.ValidateURL(p, "url", c.URL)
	for i, f := range c.Topics {
		if msg := mqttconf.ValidateFilter(f); msg != "" {
			p.Addf([]string{"topics", component.Index(i)}, "%s", msg)
		}
	}
	if len(c.ClientID) > 65535 {
		p.Addf([]string{"client_id"}, "must be at most 65535 bytes")
	}
	if c.KeepAlive.D() < time.Second {
		p.Addf([]string{"keep_alive"}, "must be at least 1s")
	}
	if c.ConnectTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"connect_timeout"}, "must be at least 100ms")
	}
}
