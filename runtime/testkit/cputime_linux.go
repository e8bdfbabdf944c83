package testkit

import (
	"syscall"
	"time"
)

// ThreadCPU is the CPU time of the calling OS thread. Benchmarks report it
// per op next to ns/op: on a shared machine wall time includes waiting for
// a core, thread CPU time much less so.
func ThreadCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
