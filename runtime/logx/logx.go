// Package logx names the structured log fields every Sluice component uses,
// so logs can be filtered the same way whatever wrote them.
package logx

// Field names. Every log line written on behalf of a task carries Task.
const (
	Task      = "task"
	Component = "component" // "source.kafka", "transform[1].wasm", "sink.http"
	Stage     = "stage"     // decode | filter | transform[N] | sink
	Plugin    = "plugin"
	Partition = "partition"
	Offset    = "offset"
	Position  = "position"
	Attempt   = "attempt"
	ErrorType = "error_type"
	Events    = "events"
	File      = "file"
	Line      = "line"
)
