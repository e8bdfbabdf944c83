// Package config loads task files: it decodes the TOML, expands environment
// references, checks every key against the component specs, builds the
// components and reports every problem at once as FILE:LINE:COL diagnostics.
// Loading reads local files (task files, WASM modules) and never the
// network.
package config

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
)

// Task is one loaded, validated task file.
type Task struct {
	Name        string
	Description string
	File        string // path as given
	Dir         string // folder of the file; relative paths in the task resolve against it
	// Digest is the SHA-256 of the file's bytes: a reload restarts a task
	// whose digest changed and leaves the others alone.
	Digest [32]byte

	Source     Component
	Filter     Filter // nil: every event matches
	Transforms []Component
	Sink       Component
	DeadLetter *Component // a sink; nil when [dead_letter] is absent

	Engine      Engine
	Retry       Retry
	Tolerance   string // "all" | "none"
	ExactlyOnce bool   // exactly_once: Kafka to Kafka in transactions
}

// Component is one configured source, transform or sink.
type Component struct {
	Type     string
	Spec     *component.Spec
	Config   any      // the decoded config struct
	Instance any      // what Spec.Build returned
	Path     []string // where it sits in the file ("transform", "[1]")
}

// Filter decides whether an event goes on. It reads the source event and may
// fail for one event (a condition that hits a runtime error). It stops when
// ctx ends, with an error.
type Filter interface {
	Match(ctx context.Context, event []byte) (bool, error)
}

// FilterConfig is the [filter] table as written.
type FilterConfig struct {
	Pattern     map[string]any `toml:"pattern" doc:"Event pattern (docs/filters.md) mirroring the event's shape; exclusive with pattern_json."`
	PatternJSON string         `toml:"pattern_json" doc:"The same pattern as JSON text; needed for null literals."`
	Condition   string         `toml:"condition" doc:"expr-lang boolean expression over the event, ANDed with the pattern."`
	// ConditionBudget bounds the work of one evaluation of the condition
	// (docs/filters.md#limits); 0: the default.
	ConditionBudget int64 `toml:"condition_budget" min:"1000" max:"1000000000000" doc:"Most steps one evaluation of the condition may take (an instruction of a loop's body at each pass, an array element or 64 bytes of a string walked); an event that needs more goes to the dead-letter queue at stage filter. Default 100000000 (0.5 to 1 s of a core)."`
}

// Engine holds the task settings the engine itself applies.
type Engine struct {
	Concurrency int           // workers, 1..32 ([source] concurrency)
	Order       string        // partition | key | none ([source] order)
	MaxInFlight int           // source batches in flight per task
	MaxEvents   int           // sink batch size ([sink] batch.max_events)
	MaxBytes    int           // payload bytes in one sink batch, past its first output ([sink] batch.max_bytes; 0: no limit)
	MaxWait     time.Duration // longest a partial sink batch waits ([sink] batch.max_wait)
	MaxEvent    int           // largest event in bytes
	// DeadLetterMaxEvents and DeadLetterMaxBytes cut dead-letter writes
	// ([dead_letter] batch.max_events, batch.max_bytes).
	DeadLetterMaxEvents int
	DeadLetterMaxBytes  int
	// Buffer, when set, puts a disk buffer in front of the sink ([sink]
	// buffer); its Dir is resolved.
	Buffer *buffer.Options
}

// Retry is the [retry] table (docs/delivery.md).
type Retry struct {
	Policy     string        // backoff | exponential | custom | none
	Attempts   int           // retries after the first try
	Initial    time.Duration // first interval
	Max        time.Duration // largest interval
	Multiplier float64       // growth of the interval per retry (custom, exponential)
	MaxAge     time.Duration // give up once the first try is this old
	Jitter     float64       // 0..1, fraction of each interval randomized
}
