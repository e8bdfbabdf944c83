//go:build !linux

package metrics

import "io"

// writeProcessExtras writes nothing off Linux, where VictoriaMetrics'
// process metrics are all there is.
func writeProcessExtras(io.Writer) {}

// residentMemory leaves the resident set size to VictoriaMetrics.
func residentMemory() (uint64, bool) { return 0, false }
