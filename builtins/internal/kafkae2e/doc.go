// Package kafkae2e holds the binary-level end-to-end tests of the Kafka
// connectors: they build the `sluice` command once and drive real
// processes (started, stopped with SIGTERM, killed with SIGKILL) against
// local Kafka clusters served over TCP by kafkadev, checking record by
// record what reaches the output topics. It also holds the Kafka pipeline
// benchmark. The package has no code of its own.
package kafkae2e
