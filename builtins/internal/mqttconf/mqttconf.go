// Package mqttconf is what the MQTT source and sink share: client options
// from the `url`, credentials and `tls` keys, a connect that waits no
// longer than its context, topic checks, and mapping MQTT failures to the
// engine's error classes with messages that say what to change.
package mqttconf

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Conn holds the connection settings of a source or sink.
type Conn struct {
	URL            string
	Username       string
	Password       component.Secret
	TLS            *tlsconf.Client
	ClientID       string
	CleanSession   bool
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	Dir            string // task folder, for relative TLS files
}

// Schemes are the URL schemes paho dials.
var Schemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}

// ValidateURL reports a url paho cannot dial.
func ValidateURL(p *component.Problems, key, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		p.Addf([]string{key}, "invalid MQTT URL %q: want scheme://host:port such as \"tcp://127.0.0.1:1883\" (ssl:// for TLS, ws:// for WebSocket)", Redact(raw))
		return
	}
	for _, s := range Schemes {
		if u.Scheme == s {
			return
		}
	}
	p.Addf([]string{key}, "unsupported scheme %q in %q: use one of %s", u.Scheme, Redact(raw), strings.Join(Schemes, ", "))
}

// Redact returns raw without the password it may carry.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// ValidateTopicName reports why name cannot be published to, or "".
func ValidateTopicName(name string) string {
	switch {
	case name == "":
		return "the topic is empty"
	case len(name) > 65535:
		return "the topic is longer than 65535 bytes"
	case strings.ContainsAny(name, "+#"):
		return fmt.Sprintf("topic %q holds a wildcard (+ or #), which only subscriptions may use", name)
	case strings.ContainsRune(name, 0):
		return fmt.Sprintf("topic %q holds a NUL character", name)
	case !utf8.ValidString(name):
		return fmt.Sprintf("topic %q is not valid UTF-8", name)
	}
	if r, ok := refusedRune(name); ok {
		return fmt.Sprintf("topic %q holds %U, a control character or Unicode non-character, which MQTT strings should not hold and brokers (Mosquitto) refuse by closing the connection", name, r)
	}
	return ""
}

// refusedRune returns the first rune of s that MQTT 3.1.1 says a string
// SHOULD NOT hold (1.5.3): a control character (U+0001..U+001F,
// U+007F..U+009F) or a Unicode non-character (U+FDD0..U+FDEF, U+nFFFE,
// U+nFFFF). Mosquitto treats a packet holding one as malformed and closes
// the connection, which fails everything in flight on it.
func refusedRune(s string) (rune, bool) {
	for _, r := range s {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return r, true
		}
	}
	return 0, false
}

// ValidateFilter reports why filter cannot be subscribed to, or "". A
// shared subscription is "$share/<group>/<filter>".
func ValidateFilter(filter string) string {
	f := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, inner, found := strings.Cut(rest, "/")
		if !found || group == "" || inner == "" || strings.ContainsAny(group, "+#") {
			return fmt.Sprintf("shared subscription %q: want \"$share/<group>/<topic filter>\"", filter)
		}
		f = inner
	}
	if _, bad := refusedRune(filter); f == "" || len(f) > 65535 || !utf8.ValidString(f) || strings.ContainsRune(f, 0) || bad {
		return fmt.Sprintf("invalid topic filter %q", filter)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Sprintf("topic filter %q: # must be a whole level and the last one (\"sensors/#\")", filter)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Sprintf("topic filter %q: + must be a whole level (\"sensors/+/temp\")", filter)
		}
	}
	return ""
}

// Options returns paho client options for c: manual reconnection (the
// connectors reconnect themselves, to know whether the broker kept the
// session), order kept, and acknowledgements sent when the caller says.
func (c Conn) Options() (*mqtt.ClientOptions, error) {
	o := mqtt.NewClientOptions()
	o.AddBroker(c.URL)
	o.SetClientID(c.ClientID)
	o.SetCleanSession(c.CleanSession)
	o.SetProtocolVersion(4) // MQTT 3.1.1
	o.SetKeepAlive(c.KeepAlive)
	o.SetPingTimeout(max(c.KeepAlive/2, time.Second))
	o.SetConnectTimeout(c.ConnectTimeout)
	o.SetWriteTimeout(c.ConnectTimeout)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetOrderMatters(true)
	if c.Username != "" {
		o.SetUsername(c.Username)
	}
	if c.Password != "" {
		o.SetPassword(c.Password.Reveal())
	}
	// ssl:// and wss:// without a tls table use the system roots.
	if c.TLS != nil {
		tc, err := c.TLS.Config(c.Dir)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// Connect connects client and returns whether the broker resumed a stored
// session. It gives up when ctx ends.
func (c Conn) Connect(ctx context.Context, client mqtt.Client) (sessionPresent bool, err error) {
	tok := client.Connect().(*mqtt.ConnectToken)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() {
			<-tok.Done()
			client.Disconnect(0)
		}()
		return false, component.Retryable(fmt.Errorf("connect to MQTT broker %s: %w", Redact(c.URL), ctx.Err()), 0)
	}
	if err := tok.Error(); err != nil {
		return false, c.Classify(err)
	}
	return tok.SessionPresent(), nil
}

// Classify maps a connect failure to its class: a refused login, client
// id or protocol needs a change of configuration; the rest is retried.
func (c Conn) Classify(err error) error {
	where := Redact(c.URL)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return component.TaskPermanent(fmt.Errorf("MQTT broker %s refused the login: fix username and password (%w)", where, err))
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return component.TaskPermanent(fmt.Errorf("MQTT broker %s refused the login of client %q (not authorized): fix username and password, or allow the client in the broker's configuration (%w)", where, c.ClientID, err))
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return component.TaskPermanent(fmt.Errorf("MQTT broker %s rejected client id %q: set client_id to one it accepts (%w)", where, c.ClientID, err))
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return component.TaskPermanent(fmt.Errorf("MQTT broker %s does not speak MQTT 3.1.1 (%w)", where, err))
	}
	if hint, ok := tlsconf.Problem(err); ok {
		return component.TaskPermanent(fmt.Errorf("connect to MQTT broker %s: %s (%w)", where, hint, err))
	}
	return component.Retryable(fmt.Errorf("connect to MQTT broker %s: %w", where, err), 0)
}

// Wait waits for tok until ctx ends.
func Wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
