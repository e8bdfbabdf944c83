// Package stdin is the `stdin` source: one event per line of standard input.
package stdin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the [source] table of a stdin task.
type Config struct {
	Format      string `toml:"format" enum:"auto,json,cloudevents" doc:"How a line becomes an event: auto (a CloudEvent as it is, other JSON or text wrapped), json (strict), cloudevents (strict)."`
	InvalidUTF8 string `toml:"invalid_utf8" enum:"replace,reject" doc:"What a line holding bytes that are not valid UTF-8 becomes: replace (each such byte becomes U+FFFD, so the event is valid JSON) or reject (the line goes to the dead-letter queue at stage decode, its bytes kept in event_base64)."`
	BatchSize   int    `toml:"batch_size" min:"1" max:"100000" doc:"Most lines per batch. A batch is also cut when no more input is waiting."`
	Source      string `toml:"event_source" doc:"CloudEvents source attribute of wrapped events."`
	Type        string `toml:"event_type" doc:"CloudEvents type attribute of wrapped events."`
}

// Register adds the stdin source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "stdin",
		Summary: "Reads one event per line from standard input until it ends.",
		Description: "Each line becomes one event according to `format`; blank lines are skipped. Event ids are `stdin-0-<byte offset>`, " +
			"so the same input gives the same ids. A line that a strict format rejects, or that is larger " +
			"than max_event_size, goes to the dead-letter queue at stage `decode`; one longer than 4 x max_event_size is cut there, " +
			"and its dead-letter record says so and gives the line's full size. A batch ends at `batch_size` lines, once its lines " +
			"hold 4 MiB, or when no more input is waiting. Delivery is at-least-once " +
			"within one run; standard input cannot be re-read, so nothing is checkpointed. SIGTERM drains and stops the task " +
			"even while standard input stays open and idle.",
		Example: "[source]\ntype = \"stdin\"\nformat = \"auto\"\n",
		New: func() any {
			return &Config{Format: "auto", InvalidUTF8: string(lineformat.Replace), BatchSize: 512, Source: "sluice/stdin", Type: "sluice.line"}
		},
		Build: func(cfg any, env component.Env) (any, error) {
			c := cfg.(*Config)
			return New(os.Stdin, c, env), nil
		},
	})
}

// Source reads events from a reader, one per line.
type Source struct {
	r      *bufio.Reader
	lines  lineformat.LineReader // of r
	closer io.Closer
	cfg    Config
	w      lineformat.Wrapper
	log    zerolog.Logger
	off    int64
	line   int64
	eof    bool
	avg    int // running estimate of batch bytes, to size the next arena
	pool   sync.Pool

	// A batch is read by a goroutine so that Read returns when its context
	// ends or the source closes, even while standard input stays open and
	// idle (a blocked read of it cannot be interrupted): pending is the
	// batch being read; a Read that gave up on it gets it next time.
	pending   chan readResult
	closed    chan struct{}
	closeOnce sync.Once
}

type readResult struct {
	b   component.Batch
	err error
}

// New returns a source reading from r.
func New(r io.Reader, cfg *Config, env component.Env) *Source {
	s := &Source{r: bufio.NewReaderSize(r, 256<<10), cfg: *cfg, log: env.Logger, closed: make(chan struct{})}
	if c, ok := r.(io.Closer); ok && r != os.Stdin {
		s.closer = c
	}
	// A line beyond 4x max_event_size (which escaping can reach) is cut
	// there: its dead letter keeps that much.
	s.lines = lineformat.LineReader{R: s.r, Limit: 4 * max(env.MaxEvent, 1<<20)}
	s.w = lineformat.Wrapper{Format: lineformat.Format(cfg.Format), InvalidUTF8: lineformat.UTF8Policy(cfg.InvalidUTF8), Source: cfg.Source, Type: cfg.Type, MaxEvent: env.MaxEvent, MaxBuilt: env.MaxEvent}
	return s
}

// Open does nothing: standard input is already open.
func (s *Source) Open(context.Context) error { return nil }

// Close releases the reader when it is not standard input and ends a
// pending Read. A read of standard input under way goes on in the
// background until input arrives or the process exits.
func (s *Source) Close(context.Context) error {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// ErrClosed is returned by a Read after Close.
var ErrClosed = errors.New("stdin source closed")

// Read returns the next lines. It cuts a batch at batch_size lines or when
// no more input is buffered, so a slow producer sees its lines promptly. It
// returns ctx.Err() as soon as ctx ends, and ErrClosed once the source is
// closed, whether input comes or not.
// OneShot marks stdin as a source that cannot send again what it read: a
// stop waits for a failing sink within the shutdown deadline rather than
// give its batches back (component.OneShot).
func (s *Source) OneShot() {}

func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	if err := ctx.Err(); err != nil {
		return component.Batch{}, err
	}
	if s.pending == nil {
		if s.eof {
			return component.Batch{}, io.EOF
		}
		select {
		case <-s.closed:
			return component.Batch{}, ErrClosed
		default:
		}
		ch := make(chan readResult, 1)
		go func() {
			b, err := s.read()
			ch <- readResult{b, err}
		}()
		s.pending = ch
	}
	select {
	case r := <-s.pending:
		s.pending = nil
		return r.b, r.err
	case <-ctx.Done():
		return component.Batch{}, ctx.Err()
	case <-s.closed:
		return component.Batch{}, ErrClosed
	}
}

// read reads one batch, blocking until input comes.
func (s *Source) read() (component.Batch, error) {
	if s.eof {
		return component.Batch{}, io.EOF
	}
	bb, _ := s.pool.Get().(*batchBuf)
	if bb == nil {
		bb = &batchBuf{}
	}
	msgs := bb.msgs[:0]
	arena := bb.arena[:0]
	if cap(arena) < s.avg {
		arena = make([]byte, 0, max(s.avg, 4096))
	}
	s.w.SetTime(time.Now())
	now := time.Now()
	read := 0
	for len(msgs) < s.cfg.BatchSize && read < maxBatchBytes {
		if len(msgs) > 0 && s.r.Buffered() == 0 {
			break
		}
		line, size, n, err := s.lines.Next()
		if n > 0 {
			s.line++
		}
		read += len(line)
		if size > int64(len(line)) {
			msgs = s.addCut(msgs, line, size, now)
		} else if jsonscan.SkipSpace(line, 0) < len(line) { // blank lines are skipped
			msgs, arena = s.add(msgs, arena, line, now)
		}
		s.off += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.eof = true
				break
			}
			return component.Batch{}, fmt.Errorf("read standard input: %w", err)
		}
	}
	s.avg = (s.avg + len(arena)) / 2
	if len(msgs) == 0 && s.eof {
		return component.Batch{}, io.EOF
	}
	bb.msgs, bb.arena = msgs, arena
	// Once the batch is acked nothing refers to its buffers any more, so
	// they serve the next batch: no garbage per batch on the hot path.
	return component.Batch{Messages: msgs, Lane: "stdin", Ack: func(error) {
		clear(bb.msgs)
		s.pool.Put(bb)
	}}, nil
}

// batchBuf holds the memory of one batch for reuse.
type batchBuf struct {
	msgs  []message.Message
	arena []byte
}

// add wraps one line into an event stored in the batch's arena.
func (s *Source) add(msgs []message.Message, arena, line []byte, now time.Time) ([]message.Message, []byte) {
	pos := message.Position{Stream: "stdin", Offset: s.off}
	start := len(arena)
	out, err := s.w.Append(arena, line, pos)
	m := message.Message{Pos: pos, Time: now}
	if err != nil {
		// Keep the raw line for the dead-letter record.
		raw := append([]byte(nil), line...)
		m.Payload, m.Event, m.Err = raw, raw, fmt.Errorf("stdin line %d: %w", s.line, err)
		s.log.Warn().Int64(logx.Line, s.line).Err(err).Msg("cannot decode line")
		return append(msgs, m), arena
	}
	// Slices of an arena that append later moves stay valid: they keep the
	// old array alive.
	arena = out
	m.Payload = arena[start:len(arena):len(arena)]
	m.Event = m.Payload
	return append(msgs, m), arena
}

// maxBatchBytes ends a batch early once its lines hold this much: a batch
// of batch_size lines each cut at 4x max_event_size would otherwise hold
// gigabytes.
const maxBatchBytes = 4 << 20

// addCut adds a line the reader cut (size bytes, line its first ones) as a
// failed event: the dead-letter queue gets what was kept and the error says
// how much was not.
func (s *Source) addCut(msgs []message.Message, line []byte, size int64, now time.Time) []message.Message {
	err := fmt.Errorf("%w: %d bytes, the limit is %d (raise max_event_size); the record holds its first %d bytes",
		lineformat.ErrTooLarge, size, s.w.MaxEvent, len(line))
	s.log.Warn().Int64(logx.Line, s.line).Err(err).Msg("cannot decode line")
	pos := message.Position{Stream: "stdin", Offset: s.off}
	raw := append([]byte(nil), line...) // the reader reuses line's memory
	return append(msgs, message.Message{Payload: raw, Event: raw, Pos: pos, Time: now, Err: fmt.Errorf("stdin line %d: %w", s.line, err)})
}

// DecodeLine makes the event a line at byte offset off of standard input
// becomes, for `sluice test`.
func (s *Source) DecodeLine(dst, line []byte, _ int, off int64, now time.Time) ([]byte, error) {
	w := lineformat.Wrapper{Format: s.w.Format, InvalidUTF8: s.w.InvalidUTF8, Source: s.w.Source, Type: s.w.Type, MaxEvent: s.w.MaxEvent, MaxBuilt: s.w.MaxBuilt}
	w.SetTime(now)
	return w.Append(dst, line, message.Position{Stream: "stdin", Offset: off})
}

var (
	_ component.Source      = (*Source)(nil)
	_ component.LineDecoder = (*Source)(nil)
)
