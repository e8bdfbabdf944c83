// Package brokere2e holds the binary-level end-to-end tests of the
// message-middleware connectors (RabbitMQ, MQTT) and of the remote function
// transform: real `sluice` processes, started, stopped with SIGTERM and
// killed with SIGKILL, against the local RabbitMQ and Mosquitto (or a
// throwaway Mosquitto where a test needs settings of its own), with every
// record checked at the other end. The bridges to and from Kafka use
// kafkadev in-process. The package has no code of its own.
package brokere2e
