package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
)

// benchCmd measures a task end to end: it writes N generated events to a
// file, runs `sluice run TASK` as a child process with the file on its
// standard input and its standard output counted, and reports events/s,
// MB/s and the child's peak RSS.
func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", stderr, "bench [--events N] [--cores N] [--preset orders|clicks] TASK.toml",
		"Runs a stdin task as a child process over N generated events and reports events/s, MB/s and peak RSS.")
	events := fs.Int64("events", 1_000_000, "events to push through the task")
	cores := fs.Int("cores", 0, "GOMAXPROCS of the measured process (0: all)")
	preset := fs.String("preset", "orders", "shape of the generated events")
	keep := fs.String("input", "", "reuse (or create) this events file instead of a temporary one")
	startup := fs.Bool("startup", false, "measure the start instead: time to the first event (cold, then second start) and idle RSS, next to the goals")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 1, 1, "one task file (its source must be stdin)") {
		return exitUsage
	}
	if *startup {
		return benchStartup(pos[0], *preset, stdout, stderr)
	}
	input := *keep
	if input == "" {
		f, err := os.CreateTemp("", "sluice-bench-*.jsonl")
		if err != nil {
			fmt.Fprintf(stderr, "sluice bench: %v\n", err)
			return exitFailed
		}
		f.Close()
		input = f.Name()
		defer os.Remove(input)
	}
	size, err := ensureEvents(input, *events, *preset)
	if err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return exitFailed
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return exitFailed
	}
	in, err := os.Open(input)
	if err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return exitFailed
	}
	defer in.Close()
	cmd := exec.Command(self, "run", "--progress", "never", "--log-level", "warn", "--state-dir", filepath.Join(os.TempDir(), "sluice-bench-state"), pos[0])
	cmd.Stdin = in
	cmd.Stderr = stderr
	if *cores > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", *cores))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return exitFailed
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return exitFailed
	}
	var outLines, outBytes int64
	br := bufio.NewReaderSize(out, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		n, err := br.Read(buf)
		outBytes += int64(n)
		for _, c := range buf[:n] {
			if c == '\n' {
				outLines++
			}
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		fmt.Fprintf(stderr, "sluice bench: the task failed: %v\n", err)
		return exitFailed
	}
	el := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss) * 1024 // Linux reports KiB (an int32 on 32-bit arm)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Fprintf(stdout, "task:       %s\n", pos[0])
	fmt.Fprintf(stdout, "events in:  %d (%.1f MB, %.0f bytes each)\n", *events, float64(size)/1e6, float64(size)/float64(*events))
	fmt.Fprintf(stdout, "events out: %d (%.1f MB)\n", outLines, float64(outBytes)/1e6)
	fmt.Fprintf(stdout, "wall time:  %v (cpu %v, GOMAXPROCS %s, %d CPUs)\n", el.Round(time.Millisecond), cpu.Round(time.Millisecond), gomaxprocs(*cores), runtime.NumCPU())
	fmt.Fprintf(stdout, "throughput: %.0f events/s, %.1f MB/s in\n", float64(*events)/el.Seconds(), float64(size)/1e6/el.Seconds())
	fmt.Fprintf(stdout, "peak RSS:   %.1f MiB (goal for bench.toml: ≤ %d MiB)\n", float64(rss)/(1<<20), goalPeakMiB)
	return exitOK
}

func gomaxprocs(cores int) string {
	if cores > 0 {
		return fmt.Sprint(cores)
	}
	return "default"
}

// ensureEvents writes n generated events to path unless it already holds
// exactly n lines; it returns the file size.
func ensureEvents(path string, n int64, preset string) (int64, error) {
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		if lines, err := countLines(path); err == nil && lines == n {
			return st.Size(), nil
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	inst, err := buildComponent(component.KindSource, "generate", map[string]any{"count": n, "batch_size": int64(4096), "preset": preset, "seed": int64(1)}, component.Env{Task: "bench", Logger: zerolog.Nop()})
	if err != nil {
		return 0, err
	}
	src := inst.(component.Source)
	ctx := context.Background()
	if err := src.Open(ctx); err != nil {
		return 0, err
	}
	defer src.Close(ctx)
	for {
		b, err := src.Read(ctx)
		if err != nil {
			break
		}
		for _, m := range b.Messages {
			w.Write(m.Payload)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				n++
			}
		}
		if err != nil {
			return n, nil
		}
	}
}
