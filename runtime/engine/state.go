package engine

import (
	"sync/atomic"
)

// State is where a task is in its life (docs/configuration.md, "Task states").
type State int32

const (
	Starting State = iota
	Running
	Paused
	// Blocked: stopped by an error under tolerance = "none"; the source is
	// paused and its position kept.
	Blocked
	// StartFailed: a non-retryable error (bad config, auth refused).
	StartFailed
	Stopped
)

var stateNames = [...]string{"Starting", "Running", "Paused", "Blocked", "StartFailed", "Stopped"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

// Stats counts what a task did. Every input event leaves in exactly one way,
// so Delivered + Filtered + DeadLettered + Dropped = In once the task is
// idle (docs/delivery.md).
type Stats struct {
	In           uint64 `json:"in"`            // events read from the source
	Delivered    uint64 `json:"delivered"`     // events whose outputs were all delivered
	Filtered     uint64 `json:"filtered"`      // events dropped by the filter or by a transform
	DeadLettered uint64 `json:"dead_lettered"` // events sent to the dead-letter queue
	Dropped      uint64 `json:"dropped"`       // failed events dropped by policy (no dead-letter queue)
	Out          uint64 `json:"out"`           // outputs delivered (fan-out counts each)
	Retries      uint64 `json:"retries"`       // sink and transform retries
	BytesIn      uint64 `json:"bytes_in"`      // payload bytes read
	BytesOut     uint64 `json:"bytes_out"`     // payload bytes delivered
}

type counters struct {
	in, delivered, filtered, deadLettered, dropped, out, retries, bytesIn, bytesOut atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		In: c.in.Load(), Delivered: c.delivered.Load(), Filtered: c.filtered.Load(),
		DeadLettered: c.deadLettered.Load(), Dropped: c.dropped.Load(), Out: c.out.Load(),
		Retries: c.retries.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
	}
}
