//go:build !devkafka

package main

import (
	"context"
	"errors"
)

// errNoDevKafka: release builds leave the dev Kafka out (franz-go's kfake is
// a test server, 0.7 MB of the binary; docs/edge.md).
var errNoDevKafka = errors.New("this build of sluice has no dev Kafka (release builds leave it out): " +
	"build one with it, make build TAGS=devkafka (or go build -tags devkafka ./cmd/sluice), " +
	"or run it from the source tree: go run -tags devkafka ./cmd/sluice dev kafka")

func startDevKafka(context.Context, devKafkaOptions) ([]string, func(), error) {
	return nil, nil, errNoDevKafka
}
