package engine

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// Definition is what the engine runs: one task's built components and the
// settings the engine itself applies. The engine knows nothing of task
// files: runtime/runner maps a loaded task file (runtime/config) to a
// Definition, and a command or a test may build one directly.
type Definition struct {
	Name        string
	Description string // free text for the admin API

	Source     component.Source
	Filter     Filter // nil: every event goes on
	Transforms []component.Transform
	Sink       component.Sink
	// DeadLetter receives the events that failed; nil: they are dropped,
	// counted and logged.
	DeadLetter component.Sink

	// SourceType and SinkType name the components in logs ("kafka");
	// TransformTypes names the transforms, in order, for the stage view.
	SourceType, SinkType string
	TransformTypes       []string

	Engine    Settings
	Retry     delivery.Policy // sink deliveries and transforms that ask for a retry
	Tolerance Tolerance
	// ExactlyOnce runs the task in the source's cycles (component.Cycler).
	ExactlyOnce bool
}

// Filter decides whether an event goes on. It reads the source event and may
// fail for one event (a condition that hits a runtime error). It stops when
// ctx ends, with an error.
type Filter interface {
	Match(ctx context.Context, event []byte) (bool, error)
}

// Order says what stays in order when a task runs several workers.
type Order string

const (
	// OrderPartition keeps each lane (a partition, a file) on one worker.
	OrderPartition Order = "partition"
	// OrderKey spreads a lane over the workers by record key.
	OrderKey Order = "key"
	// OrderNone hands batches to the workers in turn.
	OrderNone Order = "none"
)

// Tolerance is what happens to an event that failed after its retries.
type Tolerance string

const (
	// ToleranceAll dead-letters (or drops) the event and goes on.
	ToleranceAll Tolerance = "all"
	// ToleranceNone stops the task in Blocked, keeping its position.
	ToleranceNone Tolerance = "none"
)

// Settings are the knobs the engine applies to one task. Zero values take
// the defaults New documents.
type Settings struct {
	Concurrency int   // workers, 1..32 (default 1)
	Order       Order // default OrderPartition
	MaxInFlight int   // source batches between Read and Ack (default max(4, 2 x Concurrency))
	// A sink Write holds at most MaxEvents outputs (default 256) and, past
	// the first, at most MaxBytes payload bytes (0: no byte limit). A
	// partial batch waits at most MaxWait for more (0: it is written as
	// soon as the worker has no more input waiting).
	MaxEvents int
	MaxBytes  int
	MaxWait   time.Duration
	MaxEvent  int // largest event in bytes; larger ones fail at stage decode (0: no limit)
	// DeadLetterMaxEvents and DeadLetterMaxBytes cut the writes to the
	// dead-letter sink the same way (defaults 256 and no byte limit); dead
	// letters are written as soon as their batch is settled, never held.
	DeadLetterMaxEvents int
	DeadLetterMaxBytes  int
	// Buffer, when set, puts a disk buffer in front of the sink.
	Buffer *buffer.Options
}

// Defaults of Settings.
const (
	DefaultMaxEvents = 256
)

// withDefaults fills the zero values of s.
func (s Settings) withDefaults() Settings {
	if s.Concurrency <= 0 {
		s.Concurrency = 1
	}
	if s.Order == "" {
		s.Order = OrderPartition
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = max(4, 2*s.Concurrency)
	}
	if s.MaxEvents <= 0 {
		s.MaxEvents = DefaultMaxEvents
	}
	if s.DeadLetterMaxEvents <= 0 {
		s.DeadLetterMaxEvents = DefaultMaxEvents
	}
	return s
}

// cut returns how many of msgs go into the next sink write: at most
// maxEvents, and no more once maxBytes of payload are reached (0: no byte
// limit). A write always holds at least one record, however large.
func cut(msgs []message.Message, maxEvents, maxBytes int) int {
	n := min(len(msgs), maxEvents)
	if maxBytes <= 0 {
		return n
	}
	size := 0
	for i := range n {
		size += len(msgs[i].Payload)
		if size > maxBytes && i > 0 {
			return i
		}
		if size >= maxBytes {
			return i + 1
		}
	}
	return n
}
