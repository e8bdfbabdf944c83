package file

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	componenttest.Sink(t, componenttest.SinkSuite{
		New: func(t testing.TB) component.Sink {
			env := componenttest.Env(t, zerolog.WarnLevel, "sink")
			env.Dir = dir
			return componenttest.Build(t, Register, component.KindSink, "file", `path = "out.jsonl"`, env).(component.Sink)
		},
		Received: func(t testing.TB) [][]byte {
			data, err := os.ReadFile(path)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
		},
		Ordered: true,
		Poison: func(testing.TB) []byte {
			return []byte("two\nlines") // would break the line framing
		},
	})
}
