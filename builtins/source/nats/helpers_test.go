package nats

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// fixture is one test's stream on the local server.
type fixture struct {
	srv     *natstest.Server
	stream  string
	subject string
	durable string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	srv := natstest.Local(t)
	name := natstest.StreamName(t, "src")
	fx := &fixture{srv: srv, stream: name, subject: "sluice.test." + name, durable: "d"}
	srv.Stream(t, name, fx.subject+".>")
	return fx
}

// config is the source table for the fixture's stream, plus extra keys.
func (fx *fixture) config(url, extra string) string {
	return fmt.Sprintf("url = %q\nstream = %q\ndurable = %q\n%s", url, fx.stream, fx.durable, extra)
}

func (fx *fixture) build(t testing.TB, url, extra string) *Source {
	t.Helper()
	env := componenttest.Env(t, zerolog.WarnLevel, "source")
	return componenttest.Build(t, Register, component.KindSource, "nats", fx.config(url, extra), env).(*Source)
}

func (fx *fixture) publish(t testing.TB, sub string, bodies [][]byte) {
	t.Helper()
	fx.srv.Publish(t, fx.subject+"."+sub, bodies)
}

// event is the decoded CloudEvent of a record.
type event struct {
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            struct {
		Stream    string            `json:"stream"`
		Subject   string            `json:"subject"`
		Sequence  uint64            `json:"sequence"`
		Timestamp int64             `json:"timestamp"`
		Headers   map[string]any    `json:"headers"`
		Value     json.RawMessage   `json:"value"`
		Extra     map[string]string `json:"-"`
	} `json:"data"`
}

func decode(t testing.TB, m message.Message) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return ev
}
