//go:build !linux

package testkit

import "time"

// ThreadCPU is 0 where the thread's CPU time is not read: benchmarks then
// report no CPU time.
func ThreadCPU() time.Duration { return 0 }
