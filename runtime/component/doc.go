// Package component holds the contracts between the engine and the
// connectors and transforms that plug into it: the Source, Sink and
// Transform interfaces, the Spec each builtin registers, the Registry that
// the config loader and the CLI read, and the error classes every connector
// maps its failures to.
//
// Lifecycle of a component: Spec.New returns a config with defaults set; the
// loader decodes the task file into it and calls Validate (no I/O); Build
// turns the config into the component (local files only, never the network);
// the engine calls Open (I/O allowed), then Read or Write, then Close. Close
// must work after a failed or partial Open.
package component
