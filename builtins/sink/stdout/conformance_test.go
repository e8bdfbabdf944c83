package stdout

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// syncBuffer is the stand-in for standard output, safe to read while the
// sink writes.
type syncBuffer struct{ testkit.LogBuffer }

func (s *syncBuffer) lines() [][]byte {
	return bytes.Split(bytes.TrimSuffix([]byte(s.String()), []byte("\n")), []byte("\n"))
}

func TestConformance(t *testing.T) {
	out := &syncBuffer{}
	componenttest.Sink(t, componenttest.SinkSuite{
		New:      func(testing.TB) component.Sink { return New(out) },
		Received: func(testing.TB) [][]byte { return out.lines() },
		Ordered:  true,
		Poison: func(testing.TB) []byte {
			return []byte("two\nlines") // would break the line framing
		},
	})
}
