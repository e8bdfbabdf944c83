package metrics

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

func init() {
	// VictoriaMetrics writes # HELP and # TYPE lines only when asked, for
	// the whole process; its HELP lines carry no text, which
	// WritePrometheus fills in.
	vm.ExposeMetadata(true)
}

// ContentType is the media type of WritePrometheus's output: the
// Prometheus text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// RegisterProcess adds what operators expect of any process: the Go
// runtime's and the process's metrics (go_*, process_resident_memory_bytes,
// open file descriptors...) and sluice_build_info{version, goversion},
// always 1. A process serving metrics calls it once.
func (s *Set) RegisterProcess(version string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.process = true
	s.mu.Unlock()
	s.Gauge("build_info", "Build information; the value is always 1.", "version", "goversion").WithLabelValues(version, runtime.Version()).Set(1)
}

// WritePrometheus writes every series of the set in the Prometheus text
// format, each family with its # HELP and # TYPE lines, then, after
// RegisterProcess, the go_* and process_* metrics. A nil set writes
// nothing.
func (s *Set) WritePrometheus(w io.Writer) {
	if s == nil {
		return
	}
	var buf bytes.Buffer
	s.vm.WritePrometheus(&buf)
	s.mu.Lock()
	process := s.process
	s.mu.Unlock()
	if process {
		var pm bytes.Buffer
		vm.WriteProcessMetrics(&pm)
		drop := []string{"go_gc_duration_seconds"}
		rss, rssOK := residentMemory()
		if rssOK {
			drop = append(drop, "process_resident_memory_bytes")
		}
		dropFamilies(&buf, pm.Bytes(), drop...)
		writeGCDuration(&buf)
		if rssOK {
			vm.WriteGaugeUint64(&buf, "process_resident_memory_bytes", rss)
		}
		vm.WriteFDMetrics(&buf)
		writeRuntimeSettings(&buf)
		writeProcessExtras(&buf)
	}
	s.fillHelp(w, buf.Bytes())
}

// dropFamilies copies the exposition b to w without the lines of the
// families names (their metadata, samples and suffixed series).
func dropFamilies(w *bytes.Buffer, b []byte, names ...string) {
lines:
	for line := range bytes.Lines(b) {
		rest := line
		if r, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			rest = r
		} else if r, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			rest = r
		}
		for _, name := range names {
			if r, ok := bytes.CutPrefix(rest, []byte(name)); ok && len(r) > 0 && (r[0] == ' ' || r[0] == '{' || r[0] == '_' || r[0] == '\n') {
				continue lines
			}
		}
		w.Write(line)
	}
}

// writeGCDuration writes go_gc_duration_seconds as the Prometheus client
// did: quantiles of the recent stop-the-world pauses. VictoriaMetrics
// computes them over its 256 slots of pauses, zeros included, so that a
// process that collected less than 256 times shows 0 for most quantiles.
func writeGCDuration(w io.Writer) {
	st := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&st)
	vm.WriteMetadataIfNeeded(w, "go_gc_duration_seconds", "summary")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		fmt.Fprintf(w, "go_gc_duration_seconds{quantile=%q} %g\n", q, st.PauseQuantiles[i].Seconds())
	}
	fmt.Fprintf(w, "go_gc_duration_seconds_sum %g\n", st.PauseTotal.Seconds())
	fmt.Fprintf(w, "go_gc_duration_seconds_count %d\n", st.NumGC)
}

// fillHelp copies the exposition in b to w, giving every "# HELP name"
// line its text: the family's help, or for go_* and process_* metrics
// the text of processHelp.
func (s *Set) fillHelp(w io.Writer, b []byte) {
	out := make([]byte, 0, len(b)+len(b)/4)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		name, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("# HELP "))
		if !ok || bytes.IndexByte(name, ' ') >= 0 {
			out = append(out, line...)
			continue
		}
		out = append(out, "# HELP "...)
		out = append(out, name...)
		out = append(out, ' ')
		out = appendHelp(out, s.help(string(name)))
		out = append(out, '\n')
	}
	w.Write(out)
}

func (s *Set) help(name string) string {
	s.mu.Lock()
	f := s.families[name]
	s.mu.Unlock()
	if f != nil && f.help != "" {
		return f.help
	}
	if h, ok := processHelp[name]; ok {
		return h
	}
	switch {
	case strings.HasPrefix(name, "go_"):
		return "Go runtime metric " + name + "."
	case strings.HasPrefix(name, "process_"):
		return "Process metric " + name + "."
	}
	return name
}

// appendHelp escapes a help text as the text format wants: backslashes
// and line breaks.
func appendHelp(b []byte, help string) []byte {
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// Handler serves WritePrometheus's output, gzipped when the client
// accepts it (Prometheus does). It answers every client in the Prometheus
// text format, OpenMetrics included: Prometheus reads both.
func (s *Set) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		s.WritePrometheus(&buf)
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			gz.Write(buf.Bytes())
			gz.Close()
			return
		}
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Write(buf.Bytes())
	})
}

// acceptsGzip tells whether an Accept-Encoding header allows gzip (and
// does not refuse it with q=0).
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(coding) != "gzip" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// writeRuntimeSettings writes the Go runtime's settings that the
// Prometheus client exposed and VictoriaMetrics does not (it names the
// memory limit go_memlimit_bytes): dashboards read them by these names.
func writeRuntimeSettings(w io.Writer) {
	samples := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}, {Name: "/sched/gomaxprocs:threads"}}
	rtmetrics.Read(samples)
	for i, name := range []string{"go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "go_sched_gomaxprocs_threads"} {
		if samples[i].Value.Kind() == rtmetrics.KindUint64 {
			vm.WriteGaugeUint64(w, name, samples[i].Value.Uint64())
		}
	}
}

// processHelp is the help of the go_* and process_* metrics.
var processHelp = map[string]string{
	"go_gc_duration_seconds":                 "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
	"go_gc_gogc_percent":                     "Heap size target percentage configured by GOGC or debug.SetGCPercent, otherwise 100 (/gc/gogc:percent).",
	"go_gc_gomemlimit_bytes":                 "Go runtime memory limit configured by GOMEMLIMIT or debug.SetMemoryLimit, otherwise math.MaxInt64 (/gc/gomemlimit:bytes).",
	"go_memlimit_bytes":                      "Go runtime memory limit (GOMEMLIMIT), the same as go_gc_gomemlimit_bytes.",
	"go_sched_gomaxprocs_threads":            "The current runtime.GOMAXPROCS setting (/sched/gomaxprocs:threads).",
	"go_gomaxprocs":                          "The current runtime.GOMAXPROCS setting.",
	"go_goroutines":                          "Number of goroutines that currently exist.",
	"go_threads":                             "Number of OS threads created.",
	"go_info":                                "Information about the Go environment.",
	"go_info_ext":                            "Information about the Go compiler and platform.",
	"go_cpu_count":                           "Number of CPUs the process can use.",
	"go_cgo_calls_count":                     "Number of cgo calls made by the process.",
	"go_gc_forced_count":                     "Number of garbage collections forced by the application calling runtime.GC.",
	"go_sched_latencies_seconds":             "Time goroutines spent ready to run before running (/sched/latencies:seconds).",
	"go_mutex_wait_seconds_total":            "Time goroutines spent blocked on a sync.Mutex or sync.RWMutex (/sync/mutex/wait/total:seconds).",
	"go_gc_mark_assist_cpu_seconds_total":    "CPU time goroutines spent helping the garbage collector mark (/cpu/classes/gc/mark/assist:cpu-seconds).",
	"go_gc_cpu_seconds_total":                "CPU time spent in garbage collection (/cpu/classes/gc/total:cpu-seconds).",
	"go_gc_pauses_seconds":                   "Stop-the-world pauses of the garbage collector (/gc/pauses:seconds).",
	"go_scavenge_cpu_seconds_total":          "CPU time spent returning memory to the OS (/cpu/classes/scavenge/total:cpu-seconds).",
	"go_memstats_alloc_bytes":                "Number of bytes allocated in heap and currently in use.",
	"go_memstats_alloc_bytes_total":          "Total number of bytes allocated in heap until now, even if released already.",
	"go_memstats_buck_hash_sys_bytes":        "Number of bytes used by the profiling bucket hash table.",
	"go_memstats_frees_total":                "Total number of heap objects freed.",
	"go_memstats_gc_cpu_fraction":            "The fraction of the available CPU time used by the garbage collector since the process started.",
	"go_memstats_gc_sys_bytes":               "Number of bytes used for garbage collection system metadata.",
	"go_memstats_heap_alloc_bytes":           "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes.",
	"go_memstats_heap_idle_bytes":            "Number of heap bytes waiting to be used.",
	"go_memstats_heap_inuse_bytes":           "Number of heap bytes that are in use.",
	"go_memstats_heap_objects":               "Number of currently allocated objects.",
	"go_memstats_heap_released_bytes":        "Number of heap bytes released to the OS.",
	"go_memstats_heap_sys_bytes":             "Number of heap bytes obtained from the OS.",
	"go_memstats_last_gc_time_seconds":       "Number of seconds since 1970 of the last garbage collection.",
	"go_memstats_lookups_total":              "Total number of pointer lookups by the runtime.",
	"go_memstats_mallocs_total":              "Total number of heap objects allocated, both live and garbage collected.",
	"go_memstats_mcache_inuse_bytes":         "Number of bytes in use by mcache structures.",
	"go_memstats_mcache_sys_bytes":           "Number of bytes used for mcache structures obtained from the OS.",
	"go_memstats_mspan_inuse_bytes":          "Number of bytes in use by mspan structures.",
	"go_memstats_mspan_sys_bytes":            "Number of bytes used for mspan structures obtained from the OS.",
	"go_memstats_next_gc_bytes":              "Number of heap bytes when the next garbage collection will take place.",
	"go_memstats_other_sys_bytes":            "Number of bytes used for other system allocations.",
	"go_memstats_stack_inuse_bytes":          "Number of bytes in use by the stack allocator.",
	"go_memstats_stack_sys_bytes":            "Number of bytes obtained from the OS for the stack allocator.",
	"go_memstats_sys_bytes":                  "Number of bytes obtained from the OS.",
	"process_cpu_seconds_total":              "Total user and system CPU time spent in seconds.",
	"process_cpu_seconds_user_total":         "User CPU time spent in seconds.",
	"process_cpu_seconds_system_total":       "System CPU time spent in seconds.",
	"process_major_pagefaults_total":         "Page faults that needed disk I/O.",
	"process_minor_pagefaults_total":         "Page faults resolved without disk I/O.",
	"process_num_threads":                    "Number of OS threads of the process.",
	"process_max_fds":                        "Maximum number of open file descriptors.",
	"process_open_fds":                       "Number of open file descriptors.",
	"process_resident_memory_bytes":          "Resident memory size in bytes.",
	"process_resident_memory_peak_bytes":     "Peak resident memory size in bytes.",
	"process_resident_memory_anon_bytes":     "Resident anonymous memory in bytes (the heap, stacks).",
	"process_resident_memory_file_bytes":     "Resident memory mapped from files in bytes (the binary's pages).",
	"process_resident_memory_shared_bytes":   "Resident shared memory in bytes.",
	"process_start_time_seconds":             "Start time of the process since unix epoch in seconds.",
	"process_virtual_memory_bytes":           "Virtual memory size in bytes.",
	"process_virtual_memory_peak_bytes":      "Peak virtual memory size in bytes.",
	"process_virtual_memory_max_bytes":       "Maximum amount of virtual memory available in bytes.",
	"process_network_receive_bytes_total":    "Number of bytes received by the process over the network.",
	"process_network_transmit_bytes_total":   "Number of bytes sent by the process over the network.",
	"process_io_read_bytes_total":            "Bytes read through read system calls.",
	"process_io_written_bytes_total":         "Bytes written through write system calls.",
	"process_io_read_syscalls_total":         "Read system calls.",
	"process_io_write_syscalls_total":        "Write system calls.",
	"process_io_storage_read_bytes_total":    "Bytes read from storage.",
	"process_io_storage_written_bytes_total": "Bytes written to storage.",
}
