// Package delivery makes a sink write reliable: it retries retryable
// failures on the task's retry policy (honouring a server's Retry-After),
// splits a batch rejected as a whole until the offending records are
// isolated, and reports per record whether it was delivered. It also
// encodes the dead-letter record of docs/delivery.md.
//
// Who decides what: the sink classifies its errors (component.Retryable,
// EventPermanent, TaskPermanent); this package decides when to try again;
// the engine decides what a final failure means (dead-letter queue under
// tolerance "all", a blocked task under "none").
package delivery
