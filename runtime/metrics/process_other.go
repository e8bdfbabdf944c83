//go:build !linux

package metrics

import "io"

// writeProcessExtras writes nothing off Linux, where VictoriaMetrics'
// process metrics are all there is.
func writeProcessExtras(io.Writer) {}
