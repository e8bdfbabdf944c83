package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Seeker is implemented by sources that can move their read position on
// request (an operator's rewind): a Kafka source to the earliest or latest
// offsets or to the first record at or after a time, a file source back to
// the start. to is "earliest", "latest" or an RFC 3339 time, as ParseSeek
// returns it. The engine calls Seek from its read loop, with no Read in
// progress and every batch read so far acknowledged.
type Seeker interface {
	Seek(ctx context.Context, to string) error
}

// Lagger is implemented by sources that know how many records they have yet
// to read (Kafka: up to the partitions' high watermarks).
type Lagger interface {
	Lag() (records int64, ok bool)
}

// ErrCannotSeek is returned by Task.Seek for a source or a task that cannot
// rewind.
var ErrCannotSeek = errors.New("cannot rewind")

// ParseSeek checks a rewind target: "earliest", "latest" or an RFC 3339
// time (returned in UTC, RFC 3339 with nanoseconds).
func ParseSeek(s string) (string, error) {
	switch s {
	case "earliest", "latest":
		return s, nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", fmt.Errorf("rewind to %q: want \"earliest\", \"latest\" or an RFC 3339 time such as 2026-12-06T10:00:00Z", s)
	}
	return at.UTC().Format(time.RFC3339Nano), nil
}

// Lag returns the source's lag when it knows it.
func (t *Task) Lag() (int64, bool) {
	if l, ok := t.src.(Lagger); ok {
		return l.Lag()
	}
	return 0, false
}

type seekRequest struct {
	ctx   context.Context // the asker's: a request it gave up on is not served
	to    string
	reply chan error
}

// Seek moves the task's source to to (see ParseSeek): the read loop stops
// reading, waits until every batch read so far is acknowledged, and asks
// the source to seek. A paused task stays paused. It returns an error
// wrapping ErrCannotSeek when the source cannot (it is no Seeker), when the
// task commits in transactions (exactly_once), or when it is not running.
func (t *Task) Seek(ctx context.Context, to string) error {
	if _, ok := t.src.(Seeker); !ok {
		return fmt.Errorf("%w: the %s source cannot move its read position (Kafka and file sources can)", ErrCannotSeek, t.cfg.SourceType)
	}
	if t.cfg.ExactlyOnce {
		return fmt.Errorf("%w: a task with exactly_once commits in transactions; stop it and reset its consumer group's offsets instead", ErrCannotSeek)
	}
	if s := t.State(); s != Running && s != Paused {
		return fmt.Errorf("%w: the task is %s; only a running or paused task rewinds", ErrCannotSeek, s)
	}
	req := seekRequest{ctx: ctx, to: to, reply: make(chan error, 1)}
	select {
	case t.seekReq <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.interruptRead()
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// interruptRead ends the Read under way so that the read loop sees a seek
// request at once, even on an idle source.
func (t *Task) interruptRead() {
	t.mu.Lock()
	cancel := t.cancelRead
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// readContext returns the context of the next Reads: it ends with ctx, or
// earlier when a seek interrupts it; a fresh one is made only then, so
// reading costs no allocation per batch.
func (t *Task) readContext(ctx context.Context) context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readCtx == nil || t.readCtx.Err() != nil && ctx.Err() == nil {
		t.readCtx, t.cancelRead = context.WithCancel(ctx)
	}
	return t.readCtx
}

// serveSeek handles a pending seek request, if any, from the read loop.
func (t *Task) serveSeek(workCtx context.Context) {
	select {
	case req := <-t.seekReq:
		req.reply <- t.doSeek(workCtx, req)
	default:
	}
}

func (t *Task) doSeek(workCtx context.Context, req seekRequest) error {
	if err := req.ctx.Err(); err != nil {
		return err // the asker went away: nothing moves
	}
	ctx, stop := context.WithCancel(workCtx)
	defer stop()
	defer context.AfterFunc(req.ctx, stop)()
	to := req.to
	// Every batch read must be acknowledged first: a source's commit
	// position must never jump over events still on their way.
	if err := t.tracker.waitIdle(ctx); err != nil {
		return fmt.Errorf("waiting for the events under way before rewinding: %w", err)
	}
	if err := t.src.(Seeker).Seek(ctx, to); err != nil {
		return fmt.Errorf("rewinding the %s source to %s: %w", t.cfg.SourceType, to, err)
	}
	t.log.Info().Str("to", to).Msg("source rewound")
	return nil
}
