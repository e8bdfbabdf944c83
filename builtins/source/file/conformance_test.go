package file

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func TestConformanceTail(t *testing.T) {
	fx := newFixture(t, `path = "app.log"
mode = "tail"
start = "beginning"
poll_interval = "10ms"
`)
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(testing.TB) component.Source { return fx.build() },
		Produce: func(t testing.TB, bodies [][]byte) {
			var b strings.Builder
			for _, body := range bodies {
				b.Write(body)
				b.WriteByte('\n')
			}
			appendFile(t, fx.path("app.log"), b.String())
		},
		Body: func(t testing.TB, m message.Message) []byte {
			var ev struct{ Data json.RawMessage }
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			return ev.Data
		},
		Redelivers: true,
		Ordered:    true,
	})
}

func TestConformanceRead(t *testing.T) {
	fx := newFixture(t, `path = "data.jsonl"
mode = "read"
`)
	appendFile(t, fx.path("data.jsonl"), "") // read mode wants the file
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(testing.TB) component.Source { return fx.build() },
		Produce: func(t testing.TB, bodies [][]byte) {
			var b strings.Builder
			for _, body := range bodies {
				b.Write(body)
				b.WriteByte('\n')
			}
			appendFile(t, fx.path("data.jsonl"), b.String())
		},
		Body: func(t testing.TB, m message.Message) []byte {
			var ev struct{ Data json.RawMessage }
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			return ev.Data
		},
		Redelivers: true,
		Ordered:    true,
		Finite:     true,
	})
}
