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
	out *tracker
	w   *bufio.Writer
	buf []byte
}

// tracker is the writer under the buffer; it remembers whether the last
// byte that reached it ended a line.
type tracker struct {
	w       io.Writer
	midLine bool
}

func (t *tracker) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if n > 0 {
		t.midLine = p[n-1] != '\n'
	}
	return n, err
}

// New returns a sink writing to w.
func New(w io.Writer) *Sink {
	t := &tracker{w: w}
	return &Sink{out: t, w: bufio.NewWriterSize(t, 256<<10)}
}

// fail discards what the buffer still holds after a write error. A
// bufio.Writer keeps its first error and refuses every later write, and the
// unflushed bytes of the failed batch would otherwise go out ahead of the
// retried batch. What reached the output before the error cannot be taken
// back: the retry writes those lines again (at-least-once).
func (s *Sink) fail(err error) error {
	s.w.Reset(s.out)
	return fmt.Errorf("write standard output: %w", err)
}

// Open does nothing.
func (s *Sink) Open(context.Context) error { return nil }

// Write writes each payload on its own line and flushes, so a batch is
// with the operating system when Write returns. A failed Write is retried
// by the runtime: lines that reached the output before the failure are
// written again (at-least-once), after a newline ending any line the
// failure cut.
func (s *Sink) Write(_ context.Context, msgs []message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out.midLine {
		// An earlier failed write cut a line: end it, so the lines written
		// now are not glued to the fragment.
		if _, err := s.w.Write([]byte{'\n'}); err != nil {
			return s.fail(err)
		}
	}
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
			return s.fail(err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return s.fail(err)
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
	if err := s.w.Flush(); err != nil {
		return s.fail(err)
	}
	return nil
}

var _ component.Sink = (*Sink)(nil)
