package stdout

import (
	"bytes"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
)

// syncBuffer is the stand-in for standard output, safe to read while the
// sink writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Split(bytes.TrimSuffix(bytes.Clone(s.b.Bytes()), []byte("\n")), []byte("\n"))
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
