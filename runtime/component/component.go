package component

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// Batch is what a source hands the engine: records in source order plus the
// callback that reports their fate.
type Batch struct {
	// Messages are the records, in source order.
	Messages []message.Message
	// Lane names the ordered stream the batch belongs to (a Kafka
	// topic-partition, a file, one HTTP request). The engine keeps the order
	// of records within a lane and acknowledges a lane's batches in the order
	// they were read.
	Lane string
	// Ack is called exactly once by the engine. A nil error means every
	// record of the batch was handled (delivered, filtered, dead-lettered or
	// dropped by policy) and every earlier batch of the same lane was too, so
	// the source may commit the position after the last record. A non-nil
	// error means the records were not handled (the task stopped or blocked):
	// the source must not commit them. Ack may be nil.
	Ack func(err error)
}

// Source pulls records in.
type Source interface {
	// Open connects to the outside world. It may be retried.
	Open(ctx context.Context) error
	// Read blocks until a batch is available. It returns io.EOF when a finite
	// source is exhausted and ctx.Err() when ctx ends. Read is called from one
	// goroutine.
	Read(ctx context.Context) (Batch, error)
	// Close releases resources and unblocks a pending Read. Positions already
	// acknowledged must be committed before Close returns.
	Close(ctx context.Context) error
}

// Sink pushes records out.
type Sink interface {
	Open(ctx context.Context) error
	// Write delivers msgs and returns once they are safely delivered (an
	// acknowledgement from the other end, data handed to the OS). It may be
	// called concurrently by the task's workers; records of one lane always
	// come from the same worker, in order. Write must not retain msgs or the
	// bytes they point to after it returns. Errors are classified with the
	// helpers of this package (Retryable, EventPermanent, TaskPermanent);
	// an unclassified error is treated as retryable.
	Write(ctx context.Context, msgs []message.Message) error
	Close(ctx context.Context) error
}

// Transform turns records into outputs. Each output carries the Ref of the
// input it came from (copying the input Message value keeps it). An input
// that yields no output and no failure counts as filtered.
type Transform interface {
	// Apply appends outputs and per-record failures to out. A returned error
	// fails the whole batch (the engine then isolates the offending record).
	Apply(ctx context.Context, in []message.Message, out *Output) error
}

// Opener is implemented by transforms that hold resources (WASM instances).
type Opener interface {
	Open(ctx context.Context) error
}

// Closer is implemented by components that release resources at the end.
type Closer interface {
	Close(ctx context.Context) error
}

// Output collects what a transform produced for one batch.
type Output struct {
	Messages []message.Message
	Failures []Failure
	// Buf is scratch space for output payloads, reset by the engine only
	// after every output of the batch was delivered. Append to it and slice
	// the appended region; earlier slices stay valid when append reallocates.
	Buf []byte
}

// Failure reports that the input with Ref could not be transformed.
type Failure struct {
	Ref int32
	Err error
	// In is the message that failed (Fail sets it): after a fan-out by an
	// earlier transform an input reaches a transform as several messages
	// sharing its Ref, and a retry runs again the one that failed. A
	// Failure without it retries every message of its input.
	In *message.Message
}

// Emit appends an output that descends from in and carries payload.
func (o *Output) Emit(in *message.Message, payload []byte) {
	m := *in
	m.Payload = payload
	o.Messages = append(o.Messages, m)
}

// Fail records a failure for the input in.
func (o *Output) Fail(in *message.Message, err error) {
	o.Failures = append(o.Failures, Failure{Ref: in.Ref, Err: err, In: in})
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	clear(o.Messages) // drop references so the GC can free source buffers
	o.Messages = o.Messages[:0]
	clear(o.Failures)
	o.Failures = o.Failures[:0]
	o.Buf = o.Buf[:0]
}

// Pauser is implemented by sources that can stop fetching while staying
// connected (a Kafka member stays in its group). The engine pauses the
// source of a paused or blocked task.
type Pauser interface {
	Pause()
	Resume()
}

// Rewinder is implemented by sources that can read again, in place, every
// record not acknowledged yet (a Kafka source seeks back to its committed
// offsets). The engine rewinds the source when a blocked task is resumed; a
// source without it goes on from where it is, its nack handling deciding
// what is read again (an HTTP client retries after its 503).
type Rewinder interface {
	Rewind(ctx context.Context) error
}

// OneShot is implemented by sources that cannot deliver again what they
// read and was not acknowledged (stdin: the bytes are gone once read). A
// stop then waits, within the shutdown deadline, for a failing sink or a
// full disk buffer to take their batches, instead of giving the batches
// back at once as it does for the sources that send them again.
type OneShot interface {
	OneShot()
}

// Cycler is implemented by sources that commit in cycles instead of on each
// ack: Kafka exactly-once, where records consumed, records produced and
// offsets commit together in one transaction. The engine reads until
// CycleDue reports true, waits until every batch read in the cycle was
// acknowledged, then calls EndCycle with commit = true when every one of
// them was handled (nil ack) and false otherwise; the source then commits or
// aborts the cycle and, after an abort, rewinds to the last committed
// position.
type Cycler interface {
	CycleDue() bool
	EndCycle(ctx context.Context, commit bool) error
}

// LineDecoder is implemented by sources that make one event of each line of
// text (stdin, files, HTTP ingest). `sluice test` uses it so that its input
// lines become the events `sluice run` would read from the task's source.
type LineDecoder interface {
	// DecodeLine appends to dst the event that line (without its newline)
	// becomes when it is the n-th (0-based) non-blank line of the input and
	// starts at byte offset off, with now as its ingest time. A line the
	// source rejects (a strict format, an oversized line) returns dst and an
	// error: in a run the event fails at stage decode.
	DecodeLine(dst, line []byte, n int, off int64, now time.Time) ([]byte, error)
}
