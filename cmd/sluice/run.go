package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
)

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr, "run [options] FILE|DIR...",
		"Runs the tasks of the files (a folder: its *.toml files) until their sources end, or until",
		"SIGTERM/SIGINT: then each task drains what it read and commits within --shutdown-timeout.")
	var s settings
	check := bindSettings(fs, &s)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file (for performance work)")
	files, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}
	if !wantArgs(fs, files, 1, -1, "task file or folder") {
		return exitUsage
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "sluice run: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "sluice run: %v\n", err)
			return exitFailed
		}
		defer pprof.StopCPUProfile()
	}
	terminal := isTerminal(stderr)
	tw := &termWriter{w: stderr}
	log, err := newLogger(tw, s.logLevel, s.logFormat, terminal)
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: invalid --log-level %q: want debug, info, warn or error\n", s.logLevel)
		return exitUsage
	}

	if limit := applyMemoryLimit(s.memoryLimit); limit != math.MaxInt64 {
		log.Debug().Str("memory_limit", component.ByteSize(limit).String()).Msg("soft memory limit")
	}

	ms := metrics.New()
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, ms, shared)
	tasks, err := loader.LoadAll(files)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	// Loading compiled (or read from the cache) every WASM module and
	// started its first instance: tens of MiB of garbage the collector
	// would otherwise hand back to the system only slowly, if ever below
	// its goal. Once, as the tasks start (docs/edge.md, "Memory"); beside
	// them, not before them: a forced collection is a few milliseconds the
	// first event need not wait for.
	go debug.FreeOSMemory()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal means "now": skip the drain.
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		log.Warn().Msg("second signal: exiting without draining")
		os.Exit(130)
	}()

	// With an admin API that can resume (it has a token) a blocked task
	// waits to be resumed; otherwise nobody could, so it ends and the exit
	// status says so.
	opts := engine.Options{Logger: log, Metrics: ms, ShutdownTimeout: s.shutdownTimeout, HoldBlocked: s.adminAddr != "" && s.adminToken != ""}
	runners := make([]*engine.Task, len(tasks))
	for i, t := range tasks {
		runners[i] = runner.New(t, opts)
	}

	if s.adminAddr != "" {
		srv, err := admin.Start(s.adminAddr, runners, ms, admin.Options{Token: s.adminToken, Logger: log})
		if err != nil {
			fmt.Fprintf(stderr, "sluice run: admin API: %v\n", err)
			return exitFailed
		}
		defer srv.Close()
	}

	showProgress := s.progress == "always" || (s.progress == "auto" && terminal)
	var stopProgress func()
	if showProgress {
		stopProgress = startProgress(tw, runners)
	}

	idleTick := time.NewTicker(idleCheck)
	defer idleTick.Stop()
	go releaseWhenIdle(ctx, idleTick.C, func() uint64 {
		var in uint64
		for _, r := range runners {
			in += r.Stats().In
		}
		return in
	}, debug.FreeOSMemory)

	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Run(ctx)
		}()
	}
	wg.Wait()
	if stopProgress != nil {
		stopProgress()
	}
	code := exitOK
	for _, err := range errs {
		if err != nil {
			log.Error().Err(err).Msg("task ended with an error")
			code = exitFailed
		}
	}
	return code
}

func newLoader(s settings, log zerolog.Logger, ms *metrics.Set, shared *component.Shared) *config.Loader {
	stateDir := s.stateDir
	if stateDir != "" {
		if abs, err := filepath.Abs(stateDir); err == nil {
			stateDir = abs
		}
	}
	return &config.Loader{
		Registry:    registry(),
		BuildFilter: builtins.BuildFilter,
		TaskChecks:  builtins.TaskChecks,
		MaxEvent:    int(s.maxEventSize),
		Quota:       s.taskQuota,
		StateDir:    stateDir,
		Shared:      shared,
		Metrics:     ms,
		Logger:      log,
	}
}

// idleCheck is how often releaseWhenIdle looks at the tasks' counters.
const idleCheck = 5 * time.Second

// releaseWhenIdle hands the heap's free memory back to the system (release)
// once each time the process goes quiet: at a tick where the events read
// (events) did not move since the previous tick, after they had. The
// collector keeps a heap sized for the last burst, and its background
// scavenger returns it only slowly; edge boxes idle between bursts. This
// costs one collection per burst.
func releaseWhenIdle(ctx context.Context, ticks <-chan time.Time, events func() uint64, release func()) {
	var q quietness
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if q.quietAgain(events()) {
			release()
		}
	}
}

// quietness follows a counter of events read from tick to tick.
type quietness struct {
	last uint64
	busy bool
}

// quietAgain takes the counter at a tick and reports whether the process
// just went quiet: it did not move since the previous tick, after it had.
func (q *quietness) quietAgain(in uint64) bool {
	moved := in != q.last
	q.last = in
	if moved {
		q.busy = true
		return false
	}
	was := q.busy
	q.busy = false
	return was
}

// startProgress draws a live progress line until the returned func is
// called.
func startProgress(tw *termWriter, tasks []*engine.Task) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		var lastIn, lastOut uint64
		last := start
		for {
			select {
			case <-done:
				tw.clearProgress()
				return
			case now := <-tick.C:
				var total engine.Stats
				for _, t := range tasks {
					s := t.Stats()
					total.In += s.In
					total.Out += s.Out
					total.Filtered += s.Filtered
					total.DeadLettered += s.DeadLettered + s.Dropped
				}
				dt := now.Sub(last).Seconds()
				inRate := float64(total.In-lastIn) / dt
				outRate := float64(total.Out-lastOut) / dt
				lastIn, lastOut, last = total.In, total.Out, now
				tw.drawProgress(fmt.Sprintf("%s  in %d (%s/s)  out %d (%s/s)  filtered %d  failed %d",
					time.Since(start).Truncate(time.Second), total.In, human(inRate), total.Out, human(outRate), total.Filtered, total.DeadLettered))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

var _ = errors.New
