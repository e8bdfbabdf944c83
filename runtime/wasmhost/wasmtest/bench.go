package wasmtest

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Processor is what RunBatches drives: a loaded WASM transformer.
type Processor interface {
	Process(ctx context.Context, in []message.Message, out *component.Output) error
}

// ThreadCPU returns the CPU time of the calling OS thread: on a shared
// machine wall time also counts other processes, CPU time does not.
func ThreadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RunBatches runs in through p b.N times on one locked OS thread, checks
// that each batch yields wantOut outputs, and reports events/s, ns/event,
// CPU time per batch and events per CPU second.
func RunBatches(b *testing.B, p Processor, in []message.Message, wantOut int) {
	out := &component.Output{}
	ctx := context.Background()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := ThreadCPU()
	for b.Loop() {
		// Not out.Reset: clearing the previous outputs is the engine's
		// cost, not the host's.
		out.Messages, out.Failures, out.Buf = out.Messages[:0], out.Failures[:0], out.Buf[:0]
		if err := p.Process(ctx, in, out); err != nil {
			b.Fatal(err)
		}
		if len(out.Messages) != wantOut {
			b.Fatalf("%d outputs, want %d (failures %v)", len(out.Messages), wantOut, out.Failures)
		}
	}
	cpu := ThreadCPU() - cpu0
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*len(in)), "cpu-ns/event")
		b.ReportMetric(float64(b.N*len(in))/cpu.Seconds(), "cpu-events/s")
	}
}
