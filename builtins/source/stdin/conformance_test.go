package stdin

import (
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestConformance runs the source suite over a pipe that stays open, as
// standard input does while its producer is alive. Standard input is one
// stream per process: each new source gets a new pipe, so a new source never
// sees what an earlier one read (the "position" is the pipe).
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	var w *os.File
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			r, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pw.Close(); r.Close() })
			mu.Lock()
			w = pw
			mu.Unlock()
			cfg := &Config{Format: "auto", BatchSize: 7, Source: "sluice/stdin", Type: "sluice.line"}
			return New(r, cfg, componenttest.Env(t, zerolog.WarnLevel, "source"))
		},
		Produce: func(t testing.TB, bodies [][]byte) {
			mu.Lock()
			defer mu.Unlock()
			for _, b := range bodies {
				if _, err := w.Write(append(b, '\n')); err != nil {
					t.Fatal(err)
				}
			}
		},
		Body: func(t testing.TB, m message.Message) []byte {
			var ev struct{ Data json.RawMessage }
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			return ev.Data
		},
		Ordered: true,
	})
}
