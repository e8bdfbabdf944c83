package metrics

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"syscall"

	vm "github.com/VictoriaMetrics/metrics"
)

// writeProcessExtras writes the process metrics that the Prometheus client
// exposed and VictoriaMetrics does not: the address space limit and the
// network traffic of the process's network namespace.
func writeProcessExtras(w io.Writer) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err == nil {
		vm.WriteGaugeUint64(w, "process_virtual_memory_max_bytes", lim.Cur)
	}
	if rx, tx, ok := netDevTotals("/proc/self/net/dev"); ok {
		vm.WriteCounterUint64(w, "process_network_receive_bytes_total", rx)
		vm.WriteCounterUint64(w, "process_network_transmit_bytes_total", tx)
	}
}

// netDevTotals sums the bytes received and sent by every interface of
// /proc/PID/net/dev ("iface: rx_bytes rx_packets ... (8 receive fields)
// tx_bytes ...").
func netDevTotals(path string) (rx, tx uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for line := range bytes.Lines(b) {
		_, stats, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue // the two header lines
		}
		f := bytes.Fields(stats)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		t, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx, tx, ok = rx+r, tx+t, true
	}
	return rx, tx, ok
}

// residentMemory is the process's resident set size, VmRSS of
// /proc/self/status. VictoriaMetrics (as the Prometheus client) reads it
// from /proc/self/stat, whose count recent kernels only estimate from
// per-CPU counters: it read well under the real figure, even 0 in a small
// process.
func residentMemory() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v) // "2084 kB"
			if len(f) != 2 || string(f[1]) != "kB" {
				return 0, false
			}
			kb, err := strconv.ParseUint(string(f[0]), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
