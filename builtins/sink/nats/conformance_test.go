package nats

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func buildSink(t testing.TB, src string) *Sink {
	t.Helper()
	env := componenttest.Env(t, zerolog.WarnLevel, "sink")
	return componenttest.Build(t, Register, component.KindSink, "nats", src, env).(*Sink)
}

func TestConformance(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "sink")
	subject := "sluice.test." + stream
	srv.Stream(t, stream, subject)
	proxy := testkit.NewProxy(t, srv.Addr)
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, fmt.Sprintf("url = \"nats://%s\"\nsubject = %q\nreconnect_wait = \"100ms\"\n", proxy.Addr(), subject))
		},
		Received: func(t testing.TB) [][]byte {
			var out [][]byte
			for _, m := range srv.ReadAll(t, stream) {
				out = append(out, m.Data)
			}
			return out
		},
		Ordered: true,
		Cut:     proxy.Cut,
		Restore: proxy.Restore,
		Poison: func(testing.TB) []byte {
			// Over the server's max_payload (1 MiB by default).
			return append([]byte(`"`), append(bytes.Repeat([]byte("x"), 2<<20), '"')...)
		},
	})
}

func TestConformanceCore(t *testing.T) {
	srv := natstest.Local(t)
	subject := "sluice.test." + natstest.StreamName(t, "core")
	sub, err := srv.NC.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			return buildSink(t, fmt.Sprintf("url = %q\nsubject = %q\nmode = \"core\"\n", srv.URL, subject))
		},
		Received: func(t testing.TB) [][]byte {
			for {
				m, err := sub.NextMsg(0)
				if err != nil {
					return got
				}
				got = append(got, m.Data)
			}
		},
		Ordered: true,
	})
}
