// Package engine runs tasks: it reads batches from the source, runs each
// event through the filter and the transform chain on `concurrency`
// workers, delivers the outputs through the sink in batches, sends failures
// to the dead-letter path and acknowledges source batches in order.
//
// Contract:
//   - One goroutine reads the source. Batches go to workers by lane (order =
//     "partition"), by record key (order = "key": a batch is split by key
//     over the workers) or round robin (order = "none"). A worker handles its
//     batches in arrival order, so order holds per lane or per key.
//   - At most max_in_flight source batches are between Read and Ack; the
//     reader waits for a slot before reading (backpressure), so memory is
//     bounded by configuration, never by the input size.
//   - Every source batch is acked exactly once, in read order per lane, after
//     each of its events was delivered, filtered, dead-lettered or dropped
//     by policy (a nil error), or nacked when the task stops before that.
//   - Sinks see batches of at most batch.max_events outputs and, past the
//     first, batch.max_bytes payload bytes, written when full, when
//     batch.max_wait passed, or (max_wait = 0) as soon as the worker has no
//     more input waiting. Dead-letter writes are cut the same way.
//   - The engine runs a Definition (built components and Settings); it
//     knows nothing of task files (runtime/runner maps them).
//   - Shutdown: when ctx ends the reader stops, workers drain what was read
//     within the shutdown deadline, acks commit, then the source, the
//     transforms and the sinks are closed.
package engine
