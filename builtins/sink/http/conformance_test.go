package http

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestConformance runs the sink suite against a real server behind a TCP
// proxy (for the outage). The server refuses a body holding a poison record
// with 422, as an API rejecting one event would: the sink isolates it.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	rec := newRecorder(t, func(_ int, r request, w http.ResponseWriter) bool {
		if r.path == "/locked" {
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		if strings.Contains(r.body, `"poison"`) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return true
		}
		mu.Lock()
		for _, l := range lines(r.body) {
			got = append(got, []byte(l))
		}
		mu.Unlock()
		return false
	})
	proxy := testkit.NewProxy(t, strings.TrimPrefix(rec.srv.URL, "http://"))
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			cfg, probs := decodeConfig(t, urlKey("http://"+proxy.Addr()+"/hook")+"timeout = \"2s\"\nbatch = { max_bytes = \"256\" }\n")
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			s, err := New(cfg, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Received: func(testing.TB) [][]byte {
			mu.Lock()
			defer mu.Unlock()
			return bytes.Split(bytes.Join(got, []byte("\n")), []byte("\n"))
		},
		Ordered: true,
		Cut:     proxy.Cut,
		Restore: proxy.Restore,
		Poison:  func(testing.TB) []byte { return []byte(`{"poison":true}`) },
		Refused: func(t testing.TB) component.Sink {
			cfg, _ := decodeConfig(t, urlKey(rec.srv.URL+"/locked"))
			s, err := New(cfg, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}
