package http

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestConformance posts the suite's records as NDJSON requests. A request
// is answered once its events are acknowledged, so each Produce posts in
// the background; a new source is a new server (HTTP ingest keeps no
// position: a client whose request failed sends it again).
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	var cur *Source
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			cfg, probs := decodeConfig(t, "address = \"127.0.0.1:0\"\nresponse_timeout = \"30s\"\n")
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			s, err := New(cfg, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			cur = s
			mu.Unlock()
			return s
		},
		Produce: func(t testing.TB, bodies [][]byte) {
			mu.Lock()
			url := "http://" + cur.Addr().String() + "/"
			mu.Unlock()
			body := bytes.Join(bodies, []byte("\n"))
			go func() {
				resp, err := http.Post(url, "application/x-ndjson", bytes.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
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
