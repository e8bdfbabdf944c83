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
	"reflect"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
)

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr, "run [options] FILE|DIR...",
		"Runs the tasks of the files (a folder: its *.toml files) until their sources end, or until",
		"SIGTERM/SIGINT: then each task drains what it read and commits within --shutdown-timeout.",
		"SIGHUP (or POST /reload on the admin API, or a change with --watch) reloads the task files:",
		"invalid files are refused and logged; otherwise changed tasks restart, new ones start and removed ones stop.")
	var s settings
	check := bindSettings(fs, &s)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file (for performance work)")
	watch := fs.Bool("watch", false, "reload the task files when they change (as SIGHUP does), and keep running when no task runs")
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
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}
	defer logx.CaptureLibraryLogs(log)()

	if limit := applyMemoryLimit(s.memoryLimit); limit != math.MaxInt64 {
		log.Debug().Str("memory_limit", component.ByteSize(limit).String()).Msg("soft memory limit")
	}

	hup := notifyHUP()
	defer signal.Stop(hup)
	ms := metrics.New()
	ms.RegisterProcess(version)
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, ms, shared)
	// With an admin API that can resume (it has a token) a blocked task
	// waits to be resumed; otherwise nobody could, so it ends and the exit
	// status says so.
	opts := engine.Options{Logger: log, Metrics: ms, ShutdownTimeout: s.shutdownTimeout, HoldBlocked: s.adminAddr != "" && s.adminToken != ""}
	sup, err := runner.NewSupervisor(loader, files, opts)
	if err != nil {
		reportLoadError(stderr, log, jsonLogs(s.logFormat, terminal), err)
		return exitFailed
	}
	sup.KeepAlive = *watch
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

	reload := reloader(ctx, sup, log)
	stopReloads := reloadOnSignal(ctx, hup, reload)
	defer stopReloads()
	if *watch {
		if err := watchFiles(ctx, files, log, reload); err != nil {
			log.Error().Err(err).Msg("sluice run: --watch cannot watch the task files")
			return exitFailed
		}
	}

	if s.adminAddr != "" {
		srv, err := admin.Start(s.adminAddr, nil, ms, consoleOptions(s, log, shared,
			admin.Options{Token: s.adminToken, Logger: log, Tasks: sup.Tasks, Reload: adminReload(sup, log), Files: taskFiles(sup.Loaded)}))
		if err != nil {
			log.Error().Err(err).Str("admin_addr", s.adminAddr).Msg("sluice run: cannot start the admin API")
			return exitFailed
		}
		defer srv.Close()
	}

	showProgress := s.progress == "always" || (s.progress == "auto" && terminal)
	var stopProgress func()
	if showProgress {
		stopProgress = startProgress(tw, sup.Tasks)
	}

	idleTick := time.NewTicker(idleCheck)
	defer idleTick.Stop()
	go releaseWhenIdle(ctx, idleTick.C, func() uint64 {
		var in uint64
		for _, t := range sup.Tasks() {
			in += t.Stats().In
		}
		return in
	}, debug.FreeOSMemory)

	errs := sup.Run(ctx)
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

// reportLoadError reports the task files that kept sluice run from
// starting: with JSON logs one line per problem, as a refused reload logs
// them (plain text would break the log's one-object-per-line form);
// otherwise as sluice validate prints them, with excerpts of the files.
func reportLoadError(stderr io.Writer, log zerolog.Logger, json bool, err error) {
	if !json {
		fmt.Fprintln(stderr, err)
		return
	}
	var ds config.Diagnostics
	if !errors.As(err, &ds) {
		// A file or folder that cannot be listed.
		log.Error().Err(err).Msg("no task started: the task files cannot be read")
		return
	}
	for _, d := range ds {
		ev := log.Error().Str("problem", d.Error())
		if d.Snippet != "" {
			ev = ev.Str("excerpt", d.Snippet)
		}
		ev.Msg("invalid task file")
	}
	log.Error().Int("problems", len(ds)).Msg("no task started: the task files have problems (above); check them with sluice validate")
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
		MaxEvent:    s.maxEventSize.Int(),
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

// quietness follows a counter of events read from tick to tick (a reload
// restarts a task's counter: any change counts as reading).
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

// taskFiles tells the admin API where each task's file and dead letters
// are, from the loaded file of the current task of that name (a reload
// changes it).
// consoleOptions adds to o what the admin API gets from the command, which
// knows the components: the playground, and the dead-letter replay's
// events, made from a record as `sluice dlq replay` makes them.
func consoleOptions(s settings, log zerolog.Logger, shared *component.Shared, o admin.Options) admin.Options {
	o.Playground = newPlayground(s, log, shared)
	o.ReplayEvent = builtins.DeadLetterEvent
	return o
}

func taskFiles(loaded func(name string) *config.Task) func(string) admin.TaskFiles {
	return func(name string) admin.TaskFiles {
		t := loaded(name)
		if t == nil {
			return admin.TaskFiles{}
		}
		f := admin.TaskFiles{Path: t.File}
		comps := []*config.Component{&t.Source, &t.Sink, t.DeadLetter}
		for i := range t.Transforms {
			comps = append(comps, &t.Transforms[i])
		}
		for _, c := range comps {
			if c != nil {
				f.SecretKeys = append(f.SecretKeys, secretKeys(reflect.ValueOf(c.Config), 0)...)
			}
		}
		if d := t.DeadLetter; d != nil {
			f.DeadLetterWhere = fmt.Sprintf("the dead-letter queue is a %s sink ([dead_letter] in %s); read it with the tools of that system", d.Type, t.File)
			if d.Type == "file" {
				// The file sink's config, through its "path" key: the
				// commands know the builtins only through the registry.
				if p := stringField(d.Config, "Path"); p != "" {
					if !filepath.IsAbs(p) {
						p = filepath.Join(t.Dir, p)
					}
					f.DeadLetterPath = p
				}
			}
		}
		return f
	}
}

// secretKeys returns the TOML keys of the fields of type component.Secret
// in a component's config (nested tables too).
func secretKeys(v reflect.Value, depth int) []string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || depth > 4 {
		return nil
	}
	secret := reflect.TypeFor[component.Secret]()
	var keys []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		if f.Type == secret {
			keys = append(keys, name)
			continue
		}
		keys = append(keys, secretKeys(v.Field(i), depth+1)...)
	}
	return keys
}

// stringField returns the string field name of the struct v points to, or "".
func stringField(v any, name string) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return ""
	}
	f := rv.Elem().FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.String {
		return ""
	}
	return f.String()
}

// startProgress draws a live progress line until the returned func is
// called.
func startProgress(tw *termWriter, tasks func() []*engine.Task) func() {
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
				for _, t := range tasks() {
					s := t.Stats()
					total.In += s.In
					total.Out += s.Out
					total.Filtered += s.Filtered
					total.DeadLettered += s.DeadLettered + s.Dropped
				}
				dt := now.Sub(last).Seconds()
				// A reload that restarts a task starts its counters again:
				// the totals may go down.
				inRate := float64(total.In-min(lastIn, total.In)) / dt
				outRate := float64(total.Out-min(lastOut, total.Out)) / dt
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
