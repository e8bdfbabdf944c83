package component

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Class is how a failure must be handled (docs/delivery.md, "Stages and error classes").
type Class int

const (
	// ClassRetryable failures (5xx, 429, timeouts, broker retriable errors)
	// are retried on the task's retry policy.
	ClassRetryable Class = iota
	// ClassEventPermanent failures (400, 413, 422, a rejected record) send
	// the event to the dead-letter queue without retries.
	ClassEventPermanent
	// ClassTaskPermanent failures (401, 403, 404, unknown topic, auth
	// refused) stop the task in StartFailed, keeping its position.
	ClassTaskPermanent
)

func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassEventPermanent:
		return "event_permanent"
	case ClassTaskPermanent:
		return "task_permanent"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// classified wraps an error with its class and an optional retry hint.
type classified struct {
	err        error
	class      Class
	retryAfter time.Duration
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Retryable marks err as retryable. retryAfter is the server's hint (0: none).
func Retryable(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: ClassRetryable, retryAfter: retryAfter}
}

// EventPermanent marks err as a rejection of the event itself.
func EventPermanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: ClassEventPermanent}
}

// TaskPermanent marks err as a failure no retry can fix (auth, missing topic).
func TaskPermanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: ClassTaskPermanent}
}

// ClassOf returns the class of err; unclassified errors are retryable, since
// retrying is the safe default for an unknown failure.
func ClassOf(err error) Class {
	var c *classified
	if errors.As(err, &c) {
		return c.class
	}
	return ClassRetryable
}

// RetryAfter returns the server's retry hint carried by err, or 0.
func RetryAfter(err error) time.Duration {
	var c *classified
	if errors.As(err, &c) {
		return c.retryAfter
	}
	return 0
}

// MaxRetryAfter caps a server's Retry-After (ParseRetryAfter): the engine
// waits what it asks for, and a wrong header must not park a worker for
// years.
const MaxRetryAfter = 7 * 24 * time.Hour

// ParseRetryAfter reads an HTTP Retry-After header (RFC 9110): delay
// seconds or an HTTP date, capped at MaxRetryAfter. A date in the past, a
// zero or malformed value mean no delay; a number of seconds too large for
// any integer is the cap, not nothing.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n <= 0 { // also a huge negative number
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	// The three date forms HTTP/1.1 accepts.
	for _, layout := range []string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			// t.Sub saturates, so a date centuries away is not negative.
			if d := t.Sub(now); d > 0 {
				return min(d, MaxRetryAfter)
			}
			return 0
		}
	}
	return 0
}

// RecordErrors reports per-record outcomes of a Write: the sink delivered
// every record except those listed. Index is the position in the msgs slice
// handed to Write.
type RecordErrors struct {
	Errs map[int]error
}

func (e *RecordErrors) Error() string {
	for i, err := range e.Errs {
		return fmt.Sprintf("%d of the batch's records failed (record %d: %v)", len(e.Errs), i, err)
	}
	return "records failed"
}
