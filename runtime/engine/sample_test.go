package engine

import (
	"math"
	"testing"
	"time"
)

// TestTapSamplePast2To31: the record a tap samples is within the batch at
// any time, those whose microseconds since 1970 have bit 31 set among them
// (every time of this century does; as an int on 32-bit arm they read as
// negative). make test-arm32-ci runs it on armv7.
func TestTapSamplePast2To31(t *testing.T) {
	now := time.Now()
	times := []time.Time{now, time.UnixMicro(0), time.UnixMicro(math.MaxInt64)}
	for _, us := range []int64{1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, now.UnixMicro() | 1<<31} {
		times = append(times, time.UnixMicro(us))
	}
	for _, at := range times {
		for _, n := range []int{1, 2, 3, 7, 1000} {
			if i := sampleIndex(at, n); i < 0 || i >= n {
				t.Fatalf("sampleIndex(%v (%d µs), %d) = %d: outside the batch", at, at.UnixMicro(), n, i)
			}
		}
	}
}
