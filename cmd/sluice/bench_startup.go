package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The memory and start goals of docs/edge.md ("Memory"), printed next to
// what `sluice bench` measures.
const (
	goalIdleMiB     = 20 // idle RSS of a task without WASM
	goalIdleWASMMiB = 32 // idle RSS of a task with a Go WASM plugin
	goalPeakMiB     = 40 // peak RSS of the 1M-event bench (bench.toml)
	goalSecondStart = 50 * time.Millisecond
)

// startupEvents is how many generated events a start measurement feeds:
// enough that some pass any filter of the bench tasks.
const startupEvents = 200

// idleSettle is how long a started task runs before its idle RSS is read:
// its first events are through, its startup garbage collected.
const idleSettle = 2 * time.Second

// benchStartup starts the task twice as a child process on a fresh state
// directory, each time with a few events on its standard input and that
// input left open: it reports the time from the start of the process to
// its first output line (the first run compiles any WASM module, the
// second finds it in the cache) and the process's RSS once idle, read from
// /proc/PID/status.
func benchStartup(task, preset string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sluice bench --startup: %v\n", err)
		return exitFailed
	}
	wasm, err := taskHasWASM(task)
	if err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp("", "sluice-bench-startup-*")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	input := filepath.Join(tmp, "events.jsonl")
	if _, err := ensureEvents(input, startupEvents, preset); err != nil {
		return fail(err)
	}
	events, err := os.ReadFile(input)
	if err != nil {
		return fail(err)
	}
	state := filepath.Join(tmp, "state")
	var runs [2]startRun
	for i := range runs {
		r, err := measureStart(self, task, state, events, stderr)
		if err != nil {
			return fail(fmt.Errorf("start %d: %w", i+1, err))
		}
		runs[i] = r
	}
	goal := goalIdleMiB
	kind := "without WASM"
	if wasm {
		goal, kind = goalIdleWASMMiB, "with a Go WASM plugin"
	}
	fmt.Fprintf(stdout, "task:         %s (%s)\n", task, kind)
	fmt.Fprintf(stdout, "first event:  %v (%v CPU) on a fresh state directory, %v (%v CPU) on the second start",
		runs[0].firstEvent.Round(time.Millisecond), runs[0].firstEventCPU.Round(time.Millisecond),
		runs[1].firstEvent.Round(time.Millisecond), runs[1].firstEventCPU.Round(time.Millisecond))
	if wasm {
		fmt.Fprintf(stdout, " (goal ≤ %v)", goalSecondStart)
	}
	fmt.Fprintln(stdout)
	for i, r := range runs {
		label := "idle RSS:     "
		if i == 0 {
			label = "idle RSS (1): "
		}
		fmt.Fprintf(stdout, "%s%.1f MiB (%.1f anonymous, %.1f the binary and other files), peak %.1f MiB", label, mib(r.rss), mib(r.anon), mib(r.file), mib(r.hwm))
		if i == 1 {
			fmt.Fprintf(stdout, " (goal ≤ %d MiB %s)", goal, kind)
		}
		fmt.Fprintln(stdout)
	}
	return exitOK
}

type startRun struct {
	// firstEvent is the wall time from the start of the process to its
	// first output line, firstEventCPU the CPU time it had used then (on a
	// loaded machine the wall time mostly measures waiting for a core).
	firstEvent, firstEventCPU time.Duration
	rss, anon, file, hwm      int64 // bytes
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func measureStart(self, task, state string, events []byte, stderr io.Writer) (startRun, error) {
	var r startRun
	cmd := exec.Command(self, "run", "--progress", "never", "--log-level", "warn", "--state-dir", state, task)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return r, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return r, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer cmd.Wait()
	defer in.Close()
	go in.Write(events) // the pipe holds less than the events: write while reading
	br := bufio.NewReader(out)
	if _, err := br.ReadBytes('\n'); err != nil {
		return r, fmt.Errorf("no output from the task (%w): its filter must pass some of the generated events", err)
	}
	r.firstEvent = time.Since(start)
	r.firstEventCPU = processCPU(cmd.Process.Pid)
	go io.Copy(io.Discard, br)
	time.Sleep(idleSettle)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return r, fmt.Errorf("read the task's RSS (Linux only): %w", err)
	}
	r.rss = statusKiB(st, "VmRSS") << 10
	r.anon = statusKiB(st, "RssAnon") << 10
	r.file = (statusKiB(st, "RssFile") + statusKiB(st, "RssShmem")) << 10
	r.hwm = statusKiB(st, "VmHWM") << 10
	return r, nil
}

// statusKiB reads a "Name:   123 kB" line of /proc/PID/status.
func statusKiB(status []byte, name string) int64 {
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte(name+":")); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// processCPU is the CPU time pid has used, all its threads (the first
// field of /proc/PID/task/TID/schedstat, in nanoseconds); 0 when unknown.
func processCPU(pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join(dir, tid.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

var wasmTransform = regexp.MustCompile(`(?m)^\s*type\s*=\s*"wasm"`)

// taskHasWASM tells whether the task file has a wasm transform, to pick
// the goal its idle RSS is measured against.
func taskHasWASM(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return wasmTransform.Match(b), nil
}
