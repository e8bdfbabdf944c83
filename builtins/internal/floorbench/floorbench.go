// Package floorbench compares a connector with its floor: a plain program
// using the same client the simplest fast way, with the same
// acknowledgement discipline. On a shared, loaded machine two benchmarks
// run one after the other see different loads, so Compare alternates
// rounds of the two within one benchmark and reports the median rate of
// each and their ratio. Only test binaries import it.
package floorbench

import (
	"slices"
	"testing"
	"time"
)

// Run moves n events and returns how long the moving took (setup such as
// filling a queue excluded).
type Run func(b *testing.B, n int) time.Duration

// Compare runs sluice and floor alternately, rounds times each, splitting
// b.N events over the rounds, and reports "sluice-events/s",
// "floor-events/s" (medians) and "%-of-floor".
func Compare(b *testing.B, rounds int, sluice, floor Run) {
	n := max(1, b.N/rounds)
	var s, f []float64
	b.ResetTimer()
	for r := range rounds {
		// Alternate which goes first, so that neither always meets a
		// broker that has just worked.
		first, second := sluice, floor
		if r%2 == 1 {
			first, second = floor, sluice
		}
		d1 := first(b, n)
		d2 := second(b, n)
		if r%2 == 1 {
			d1, d2 = d2, d1
		}
		s = append(s, float64(n)/d1.Seconds())
		f = append(f, float64(n)/d2.Seconds())
	}
	ms, mf := median(s), median(f)
	b.ReportMetric(ms, "sluice-events/s")
	b.ReportMetric(mf, "floor-events/s")
	b.ReportMetric(100*ms/mf, "%-of-floor")
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
