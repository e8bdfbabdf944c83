//go:build !devkafka

package main

import (
	"strings"
	"testing"
)

// TestDevKafkaNeedsTheTag: without -tags devkafka, `sluice dev kafka` fails
// saying how to get a build that has it.
func TestDevKafkaNeedsTheTag(t *testing.T) {
	_, errOut, code := runMain("dev", "kafka", "--addr", "127.0.0.1:0")
	if code != exitFailed || !strings.Contains(errOut, "-tags devkafka") {
		t.Fatalf("sluice dev kafka without the tag: exit %d, stderr:\n%s", code, errOut)
	}
}
