// Package stdout is the `stdout` sink: one payload per line on standard
// output.
package stdout

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sluicehq/sluice/builtins/lines"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the [sink] table of a stdout task.
type Config struct{}

// Register adds the stdout sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "stdout",
		Summary: "Writes one payload per line to standard output.",
		Description: "JSON payloads are written compact; a non-JSON payload holding a newline is rejected " +
			"(it goes to the dead-letter queue) rather than breaking the framing. A batch counts as delivered " +
			"once it is written to the operating system.",
		Example: "[sink]\ntype = \"stdout\"\n",
		New:     func() any { return &Config{} },
		Build: func(any, component.Env) (any, error) {
			return New(os.Stdout), nil
		},
	})
}

// Sink writes lines to a writer.
type Sink struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
}

// New returns a sink writing to w.
func New(w io.Writer) *Sink { return &Sink{w: bufio.NewWriterSize(w, 256<<10)} }

// Open does nothing.
func (s *Sink) Open(context.Context) error { return nil }

// Write writes each payload on its own line and flushes, so a batch is
// with the operating system when Write returns.
func (s *Sink) Write(_ context.Context, msgs []message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad *component.RecordErrors
	for i := range msgs {
		out, err := lines.Append(s.buf[:0], msgs[i].Payload)
		if err != nil {
			if bad == nil {
				bad = &component.RecordErrors{Errs: map[int]error{}}
			}
			bad.Errs[i] = component.EventPermanent(err)
			continue
		}
		s.buf = out
		if _, err := s.w.Write(out); err != nil {
			return fmt.Errorf("write standard output: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write standard output: %w", err)
	}
	if bad != nil {
		return bad
	}
	return nil
}

// Close flushes what is buffered.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

var _ component.Sink = (*Sink)(nil)
