// Package mqtt is the `mqtt` sink: it publishes each record's payload to a
// topic (a template over the original source event) with paho (MQTT 3.1.1)
// at QoS 0, 1 or 2, optionally retained. With QoS 1 and 2, Write returns
// once the broker acknowledged every message (PUBACK, PUBCOMP).
// docs/connectors/mqtt.md is the user reference.
package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/mqttconf"
	"github.com/sluicehq/sluice/builtins/internal/sinktpl"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Config is the [sink] table of `type = "mqtt"`.
type Config struct {
	URL            string             `toml:"url" required:"true" doc:"Broker URL: \"tcp://host:1883\" (also mqtt://), \"ssl://host:8883\" for TLS (also tls://, mqtts://), \"ws://host/mqtt\" or wss:// for WebSocket."`
	Username       string             `toml:"username" doc:"User name to log in with."`
	Password       component.Secret   `toml:"password" doc:"Password to log in with; write \"${env:MQTT_PASSWORD}\" to keep it out of the file."`
	TLS            *tlsconf.Client    `toml:"tls" doc:"TLS settings for ssl:// and wss:// URLs."`
	ClientID       string             `toml:"client_id" doc:"Client id; unique per connection (two clients with one id disconnect each other). Default: \"sluice-<task>-sink-<random>\"."`
	KeepAlive      component.Duration `toml:"keep_alive" doc:"MQTT keep-alive: a connection silent for about 1.5 times this long is considered dead and reopened."`
	ConnectTimeout component.Duration `toml:"connect_timeout" doc:"Longest time to connect and log in."`

	Topic          string             `toml:"topic" required:"true" doc:"Topic to publish to: a name or a template such as \"plant/${line}/alerts\" over the original source event. A record whose topic renders empty, with a wildcard, or with a character brokers refuse (NUL, a control character, a Unicode non-character) goes to the dead-letter queue."`
	QoS            int                `toml:"qos" min:"0" max:"2" doc:"Publish QoS: 0 (fire and forget: Write returns once the message is written to the connection), 1 (at least once: Write waits for PUBACK), 2 (exactly once between Sluice and the broker: Write waits for PUBCOMP)."`
	Retain         bool               `toml:"retain" doc:"Publish retained messages: the broker keeps the last one per topic and hands it to new subscribers."`
	Variables      map[string]string  `toml:"variables" doc:"Template variables: name = JSONPath into the original source event (\"$.data.line\") or a fixed text."`
	MaxInFlight    int                `toml:"max_inflight" min:"1" max:"65535" doc:"Most QoS 1 and 2 messages published and not acknowledged yet, over all of the task's writes. Brokers bound what they accept (Mosquitto's max_inflight_messages, 20 by default, past which it drops QoS 2 messages); raise both together."`
	PublishTimeout component.Duration `toml:"publish_timeout" doc:"Longest time a Write waits for the broker's acknowledgements; past it the batch fails as retryable and the task's retry policy publishes it again (a QoS 1 message may then arrive twice)."`
}

func newConfig() any {
	return &Config{
		KeepAlive:      component.Duration(30 * time.Second),
		ConnectTimeout: component.Duration(10 * time.Second),
		QoS:            1,
		MaxInFlight:    20,
		PublishTimeout: component.Duration(30 * time.Second),
	}
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	mqttconf.ValidateURL(p, "url", c.URL)
	cp := sinktpl.New(c.Variables, p)
	if f := cp.Field([]string{"topic"}, c.Topic, true); f != nil && f.IsFixed && c.Topic != "" {
		if msg := mqttconf.ValidateTopicName(c.Topic); msg != "" {
			p.Addf([]string{"topic"}, "%s", msg)
		}
	}
	if c.KeepAlive.D() < time.Second {
		p.Addf([]string{"keep_alive"}, "must be at least 1s")
	}
	if c.ConnectTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"connect_timeout"}, "must be at least 100ms")
	}
	if c.PublishTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"publish_timeout"}, "must be at least 100ms")
	}
}

// Register adds the mqtt sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "mqtt",
		Summary: "Publish records to MQTT topics (3.1.1) at QoS 0, 1 or 2, optionally retained; the topic may be a template.",
		Description: "Publishes each record's payload to `topic` (a template over the original source event) at `qos`, " +
			"with the `retain` flag. With QoS 1 and 2 a Write returns once the broker acknowledged every message; a lost " +
			"connection is reopened by the next Write and the batch retried on the task's policy; refused credentials stop " +
			"the task; a topic that renders invalid sends its record to the dead-letter queue. See docs/connectors/mqtt.md.",
		Example: `[sink]
type = "mqtt"
url = "tcp://127.0.0.1:1883"
topic = "alerts/${line}"
variables = { line = "$.data.line" }
qos = 1
`,
		New:   newConfig,
		Build: build,
	})
}

// Sink is the mqtt sink.
type Sink struct {
	cfg   *Config
	log   zerolog.Logger
	conn  mqttconf.Conn
	where string
	topic *sinktpl.Field
	m     sinkMetrics
	// window holds one token per QoS 1 or 2 message in flight.
	window chan struct{}

	mu      sync.Mutex
	client  paho.Client
	dead    chan struct{} // closed when client's connection is lost
	closed  bool
	connect sync.Mutex // one connect at a time
	started bool       // connected once: later connects are reconnects
}

type sinkMetrics struct {
	messages   metrics.Counter
	errors     *metrics.CounterVec
	latency    metrics.Observer
	reconnects metrics.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	cp := sinktpl.New(cfg.Variables, nil)
	cp.MaxEvent = env.MaxEvent
	topic := cp.Field([]string{"topic"}, cfg.Topic, true)
	if !cp.OK {
		return nil, errors.New("mqtt sink: invalid topic template") // Validate reported the details
	}
	id := cfg.ClientID
	if id == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		id = "sluice-" + env.Task + "-sink-" + hex.EncodeToString(b)
	}
	s := &Sink{
		cfg: cfg,
		log: env.Logger,
		conn: mqttconf.Conn{URL: cfg.URL, Username: cfg.Username, Password: cfg.Password, TLS: cfg.TLS, ClientID: id,
			CleanSession: true, KeepAlive: cfg.KeepAlive.D(), ConnectTimeout: cfg.ConnectTimeout.D(), Dir: env.Dir},
		where:  mqttconf.Redact(cfg.URL),
		topic:  topic,
		window: make(chan struct{}, cfg.MaxInFlight),
	}
	if _, err := s.conn.Options(); err != nil {
		return nil, err
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sinkMetrics{
		messages:   ms.Counter("mqtt_publisher_messages_total", "Messages published (acknowledged by the broker at QoS 1 and 2).", "task").WithLabelValues(lbl),
		errors:     ms.Counter("mqtt_publisher_errors_total", "Messages that failed to publish, by error class.", "task", "error_type").Curry(lbl),
		latency:    ms.Histogram("mqtt_publish_seconds", "Time for one Write, from the first publish to the last acknowledgement.", nil, "task").WithLabelValues(lbl),
		reconnects: ms.Counter("mqtt_publisher_reconnects_total", "Connections reopened after the last one was lost.", "task").WithLabelValues(lbl),
	}
	return s, nil
}

// Open connects. Refused credentials fail the task; an unreachable broker
// is retried.
func (s *Sink) Open(ctx context.Context) error {
	if _, err := s.current(ctx); err != nil {
		return fmt.Errorf("open mqtt sink: %w", err)
	}
	s.log.Info().Str("url", s.where).Str("topic", s.cfg.Topic).Int("qos", s.cfg.QoS).Str("client_id", s.conn.ClientID).Msg("mqtt sink connected")
	return nil
}

// current returns the connected client, connecting when there is none.
func (s *Sink) current(ctx context.Context) (paho.Client, error) {
	s.connect.Lock()
	defer s.connect.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("mqtt sink: Write after Close")
	}
	if s.client != nil {
		select {
		case <-s.dead:
		default:
			c := s.client
			s.mu.Unlock()
			return c, nil
		}
		old := s.client
		s.client = nil
		go old.Disconnect(0)
	}
	s.mu.Unlock()
	opts, err := s.conn.Options()
	if err != nil {
		return nil, component.TaskPermanent(err)
	}
	dead := make(chan struct{})
	var once sync.Once
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		once.Do(func() { close(dead) })
		s.log.Warn().Err(err).Str("url", s.where).Msg("mqtt sink connection lost; the next write reconnects")
	})
	client := paho.NewClient(opts)
	if _, err := s.conn.Connect(ctx, client); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		client.Disconnect(0)
		return nil, errors.New("mqtt sink: Write after Close")
	}
	s.client, s.dead = client, dead
	if s.started {
		s.m.reconnects.Inc()
		s.log.Info().Str("url", s.where).Msg("mqtt sink reconnected")
	}
	s.started = true
	return client, nil
}

// Write publishes msgs and returns once every message was acknowledged
// (QoS 1, 2) or written (QoS 0). A record whose topic renders invalid fails
// alone, event-permanent.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	err := s.write(ctx, msgs)
	var re *component.RecordErrors
	if err != nil && !errors.As(err, &re) {
		// The whole batch failed (no connection, a publish timeout):
		// counted too, not only the messages refused one by one.
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Add(uint64(len(msgs)))
	}
	return err
}

func (s *Sink) write(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	client, err := s.current(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	// paho writes the payloads after Publish returns, and may still hold
	// them when a Write gives up waiting: it publishes copies, in one
	// buffer per Write, so that the caller's buffers are free on return.
	size := 0
	for i := range msgs {
		size += len(msgs[i].Payload)
	}
	payloads := make([]byte, 0, size)
	var tbuf []byte
	var prep map[int]error
	toks := make([]paho.Token, len(msgs))
	qos := byte(s.cfg.QoS)
	timer := time.NewTimer(s.cfg.PublishTimeout.D())
	defer timer.Stop()
	// Acknowledgements come in publish order: waiting for the oldest
	// frees the window for the next message.
	oldest := 0
	held := 0
	defer func() {
		for ; held > 0; held-- {
			<-s.window
		}
	}()
	wait := func(i int) error {
		select {
		case <-toks[i].Done():
		case <-ctx.Done():
			// The messages awaiting their acknowledgement give back their
			// places in the window: they must not stay in flight on the
			// connection, or the next Writes put more than max_inflight
			// on it.
			s.dropClient(client)
			return component.Retryable(fmt.Errorf("publish to MQTT broker %s: %w", s.where, ctx.Err()), 0)
		case <-timer.C:
			s.dropClient(client)
			return component.Retryable(fmt.Errorf("MQTT broker %s did not acknowledge within publish_timeout (%s)", s.where, s.cfg.PublishTimeout), 0)
		}
		if qos > 0 {
			<-s.window
			held--
		}
		if err := toks[i].Error(); err != nil {
			// A failed publish means the connection failed: the rest of
			// the batch shares its fate, and the next Write reconnects.
			s.dropClient(client)
			return component.Retryable(fmt.Errorf("publish to MQTT broker %s (record %d): %w", s.where, i, err), 0)
		}
		return nil
	}
	for i := range msgs {
		var topic string
		var err error
		if tbuf, topic, err = s.topic.Render(tbuf[:0], msgs[i].Event); err != nil {
			if prep == nil {
				prep = map[int]error{}
			}
			prep[i] = component.EventPermanent(fmt.Errorf("event %s: topic template: %w", msgs[i].Pos, err))
			continue
		}
		if !s.topic.IsFixed {
			if msg := mqttconf.ValidateTopicName(topic); msg != "" {
				if prep == nil {
					prep = map[int]error{}
				}
				prep[i] = component.EventPermanent(fmt.Errorf("event %s: topic template %q: %s", msgs[i].Pos, s.cfg.Topic, msg))
				continue
			}
		}
		if qos > 0 {
			for acquired := false; !acquired; {
				select {
				case s.window <- struct{}{}:
					held++
					acquired = true
				default:
					// The window is full: wait for our oldest message, or
					// for another Write to free a place.
					for oldest < i && toks[oldest] == nil {
						oldest++
					}
					if oldest < i {
						if err := wait(oldest); err != nil {
							return err
						}
						oldest++
						continue
					}
					select {
					case s.window <- struct{}{}:
						held++
						acquired = true
					case <-ctx.Done():
						return component.Retryable(fmt.Errorf("publish to MQTT broker %s: %w", s.where, ctx.Err()), 0)
					case <-timer.C:
						return component.Retryable(fmt.Errorf("MQTT broker %s did not acknowledge within publish_timeout (%s)", s.where, s.cfg.PublishTimeout), 0)
					}
				}
			}
		}
		p0 := len(payloads)
		payloads = append(payloads, msgs[i].Payload...)
		toks[i] = client.Publish(topic, qos, s.cfg.Retain, payloads[p0:len(payloads):len(payloads)])
	}
	re := &component.RecordErrors{Errs: prep}
	for i := oldest; i < len(toks); i++ {
		if toks[i] == nil {
			continue
		}
		if err := wait(i); err != nil {
			return err
		}
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.messages.Add(uint64(len(msgs) - len(prep)))
	if len(prep) == 0 {
		return nil
	}
	s.m.errors.WithLabelValues(component.ClassEventPermanent.String()).Add(uint64(len(prep)))
	return re
}

// dropClient forgets client so that the next Write connects anew.
func (s *Sink) dropClient(client paho.Client) {
	s.mu.Lock()
	if s.client == client {
		s.client = nil
	}
	s.mu.Unlock()
	go client.Disconnect(0)
}

// Close disconnects, letting messages in flight finish for up to a second.
// It is safe without Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	client := s.client
	s.client = nil
	s.closed = true
	s.mu.Unlock()
	if client != nil {
		client.Disconnect(1000)
	}
	return nil
}
