// Package natsredise2e holds the binary-level end-to-end tests of the nats
// and redis connectors: they build the `sluice` command once and drive real
// processes (started, stopped with SIGTERM, killed with SIGKILL, cut off
// from their server by a TCP proxy) against the local NATS server with
// JetStream and the local Redis, checking record by record what reaches the
// output. The NATS → Redis bridge lives here too. The package has no code
// of its own.
package natsredise2e
