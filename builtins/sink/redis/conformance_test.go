package redis

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func buildSink(t testing.TB, src string) *Sink {
	t.Helper()
	env := componenttest.Env(t, zerolog.WarnLevel, "sink")
	return componenttest.Build(t, Register, component.KindSink, "redis", src, env).(*Sink)
}

func TestConformanceStream(t *testing.T) {
	srv := redistest.Local(t)
	stream := srv.Key(t, "out")
	proxy := testkit.NewProxy(t, srv.Addr)
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, fmt.Sprintf("url = %q\nstream = %q\n", redistest.URLVia(srv.URL, proxy.Addr()), stream))
		},
		Received: func(t testing.TB) [][]byte {
			var out [][]byte
			for _, e := range srv.Entries(t, stream) {
				out = append(out, []byte(e.Values["payload"]))
			}
			return out
		},
		Ordered: true,
		Cut:     proxy.Cut,
		Restore: proxy.Restore,
	})
}

func TestConformanceSet(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "kv")
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, fmt.Sprintf("url = %q\nmode = \"set\"\nkey = %q\nvariables = { id = \"$.id\" }\n", srv.URL, prefix+":${id}"))
		},
		Received: func(t testing.TB) [][]byte { return values(t, srv, prefix) },
	})
}

func TestConformanceHash(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "h")
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, fmt.Sprintf("url = %q\nmode = \"hash\"\nkey = %q\nvariables = { id = \"$.id\" }\n", srv.URL, prefix+":${id}"))
		},
		Received: func(t testing.TB) [][]byte {
			// Rebuild the object from the hash: the default payload is
			// {"conformance": <string>, "n": <number>}.
			keys := scanKeys(t, srv, prefix)
			var out [][]byte
			for _, k := range keys {
				h := srv.HGetAll(t, k)
				out = append(out, fmt.Appendf(nil, `{"conformance":%q,"n":%s}`, h["conformance"], h["n"]))
			}
			return out
		},
		Poison: func(testing.TB) []byte { return []byte(`["not", "an", "object"]`) },
	})
}

func scanKeys(t testing.TB, srv *redistest.Server, prefix string) []string {
	return srv.Keys(t, prefix+":*")
}

func values(t testing.TB, srv *redistest.Server, prefix string) [][]byte {
	var out [][]byte
	for _, k := range scanKeys(t, srv, prefix) {
		out = append(out, []byte(srv.String(t, "GET", k)))
	}
	return out
}
