package redis

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// fixture is one test's stream on the local Redis.
type fixture struct {
	srv    *redistest.Server
	stream string
	group  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	srv := redistest.Local(t)
	return &fixture{srv: srv, stream: srv.Key(t, "src"), group: "g"}
}

func (fx *fixture) config(url, consumer, extra string) string {
	return fmt.Sprintf("url = %q\nstream = %q\ngroup = %q\nconsumer = %q\nblock = \"100ms\"\n%s", url, fx.stream, fx.group, consumer, extra)
}

func (fx *fixture) build(t testing.TB, url, consumer, extra string) *Source {
	t.Helper()
	env := componenttest.Env(t, zerolog.WarnLevel, "source")
	return componenttest.Build(t, Register, component.KindSource, "redis", fx.config(url, consumer, extra), env).(*Source)
}

// event is the decoded CloudEvent of a record.
type event struct {
	ID      string `json:"id"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Time    string `json:"time"`
	Data    struct {
		Stream string                     `json:"stream"`
		ID     string                     `json:"id"`
		Fields map[string]json.RawMessage `json:"fields"`
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
