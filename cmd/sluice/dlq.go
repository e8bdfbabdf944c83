package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
)

// dlqCmd inspects and replays dead-letter files.
func dlqCmd(args []string, stdout, stderr io.Writer) int {
	const usage = "Usage: sluice dlq show FILE...\n" +
		"       sluice dlq replay TASK.toml --from FILE [options]\n\n" +
		"Summarises dead-letter files, or runs their events through the (fixed) task again.\n" +
		"Run 'sluice help dlq SUBCOMMAND' for a subcommand's options."
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "show":
		return dlqShow(args[1:], stdout, stderr)
	case "replay":
		return dlqReplay(args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "sluice dlq: unknown subcommand %q (want show or replay)\n", args[0])
	return exitUsage
}

// dlqShow summarises dead-letter files: records by task, stage and error
// class, with one sample message each.
func dlqShow(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dlq show", stderr, "dlq show FILE...",
		"Counts the records of dead-letter files by task, stage and error class, with a sample message each.")
	args, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, args, 1, -1, "dead-letter FILE") {
		return exitUsage
	}
	type key struct{ task, stage, class string }
	counts := map[key]int{}
	samples := map[key]string{}
	total := 0
	for _, name := range args {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "sluice dlq show: %v\n", err)
			return exitFailed
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if jsonscan.SkipSpace(line, 0) == len(line) {
				continue
			}
			k := key{"?", "?", "?"}
			msg := ""
			if jsonscan.Valid(line) {
				get := func(path ...string) string {
					segs := make([]jsonscan.Seg, len(path))
					for i, p := range path {
						segs[i] = jsonscan.Seg{Key: p}
					}
					s, e, ok := jsonscan.Get(line, segs)
					if !ok {
						return "?"
					}
					v, ok := jsonscan.AppendString(nil, line[s:e])
					if !ok {
						return string(line[s:e])
					}
					return string(v)
				}
				k = key{get("task"), get("stage"), get("error", "class")}
				msg = get("error", "message")
			}
			counts[k]++
			if _, ok := samples[k]; !ok {
				samples[k] = msg
			}
			total++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "sluice dlq show: %s: %v\n", name, err)
			return exitFailed
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	fmt.Fprintf(stdout, "%d records\n", total)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%8d  task %s  stage %s  class %s\n          e.g. %s\n", counts[k], k.task, k.stage, k.class, samples[k])
	}
	return exitOK
}

// dlqReplay runs a task with its source replaced by a dead-letter file, so
// the events go through the (fixed) task again.
func dlqReplay(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return dlqReplayUntil(ctx, args, stdout, stderr)
}

// dlqReplayUntil is dlqReplay, interrupted when ctx ends (SIGINT, SIGTERM).
func dlqReplayUntil(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dlq replay", stderr, "dlq replay TASK.toml --from DLQ.jsonl [--stage S]... [--skip-transforms] [--failed FILE]",
		"Runs the task with its source replaced by the dead-letter records' original events; events that",
		"fail again go to --failed.")
	from := fs.String("from", "", "dead-letter file to replay (a glob reads several), or a Kafka dead-letter topic as kafka://host:port[,host:port]/topic")
	var stages multiFlag
	fs.Var(&stages, "stage", "only records of this stage (decode, filter, transform, transform[N], sink); repeatable")
	skip := fs.Bool("skip-transforms", false, "send the events to the sink without the filter and transforms")
	failed := fs.String("failed", "", "where events that fail again go (default: FROM.failed.jsonl, glob characters replaced by _, or FROM.failed when --from matches that); removed after a clean replay unless it held records before")
	var s settings
	check := bindSettings(fs, &s, settingStateDir, settingShutdownTimeout, settingMaxEventSize, settingLogLevel, settingLogFormat)
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: %v\n", err)
		return exitUsage
	}
	if !wantArgs(fs, pos, 1, 1, "one task file") {
		return exitUsage
	}
	if *from == "" {
		fmt.Fprintln(stderr, "sluice dlq replay: --from is required")
		fs.Usage()
		return exitUsage
	}
	if strings.HasPrefix(*from, "kafka://") {
		if *failed == "" {
			*failed = kafkaTopic(*from) + ".failed.jsonl"
		}
	} else {
		// The events that fail again must never be read by a replay of the
		// same --from: neither this run (the source lists its files when the
		// run starts, after the --failed file is opened) nor the next one.
		matched, err := filepath.Glob(*from)
		if err != nil {
			fmt.Fprintf(stderr, "sluice dlq replay: --from %q: %v\n", *from, err)
			return exitUsage
		}
		if *failed == "" {
			name, ok := defaultFailed(*from, matched)
			if !ok {
				fmt.Fprintf(stderr, "sluice dlq replay: --from %q would match any default name for the events that fail again: give --failed a file it does not match\n", *from)
				return exitUsage
			}
			*failed = name
		}
		if replays(*from, matched, *failed) {
			fmt.Fprintf(stderr, "sluice dlq replay: --failed %s is read by --from %q: the next replay would read the events twice; choose a file it does not match\n", *failed, *from)
			return exitUsage
		}
	}
	terminal := isTerminal(stderr)
	log, err := newLogger(stderr, s.logLevel, s.logFormat, terminal)
	if err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: %v\n", err)
		return exitUsage
	}
	defer logx.CaptureLibraryLogs(log)()
	ms := metrics.New()
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, ms, shared)
	task, err := loader.LoadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	// The task runs with its source replaced by the dead-letter records and
	// its dead-letter queue by the --failed file, both built through the
	// registry as a task file would declare them.
	env := component.Env{Task: task.Name, Dir: ".", MaxEvent: task.Engine.MaxEvent, Logger: log, Shared: shared, Metrics: ms}
	path := *from
	if !strings.HasPrefix(path, "kafka://") {
		path = abs(path)
	}
	srcTable := map[string]any{"path": path}
	if len(stages) > 0 {
		srcTable["stages"] = toAnyList(stages)
	}
	src, err := buildComponent(component.KindSource, "dlq", srcTable, env)
	if err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: --from: %v\n", err)
		task.Discard(ctx)
		return exitUsage
	}
	// A --failed file that holds records already (an earlier replay's) is
	// kept after a clean replay: only a file this run created, or that was
	// empty, is removed.
	fi, err := os.Stat(*failed)
	keepFailed := err == nil && (!fi.Mode().IsRegular() || fi.Size() > 0)
	failedSink, err := buildComponent(component.KindSink, "file", map[string]any{"path": abs(*failed)}, env)
	if err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: --failed: %v\n", err)
		task.Discard(ctx)
		return exitFailed
	}
	def := runner.Definition(task)
	closeUnused(ctx, task.Source.Instance)
	if task.DeadLetter != nil {
		closeUnused(ctx, task.DeadLetter.Instance)
	}
	def.Source, def.SourceType = src.(component.Source), "dlq"
	def.DeadLetter = failedSink.(component.Sink)
	def.Tolerance = engine.ToleranceAll
	if *skip {
		for _, tr := range def.Transforms {
			closeUnused(ctx, tr)
		}
		def.Filter, def.Transforms = nil, nil
	}

	run := engine.New(def, engine.Options{Logger: log, Metrics: ms, ShutdownTimeout: s.shutdownTimeout})
	err = run.Run(ctx)
	st := run.Stats()
	fmt.Fprintf(stdout, "replayed %d events: %d delivered, %d filtered, %d failed again (in %s)\n", st.In, st.Delivered, st.Filtered, st.DeadLettered, *failed)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	if st.DeadLettered == 0 && !keepFailed {
		os.Remove(*failed)
	}
	if ctx.Err() != nil {
		// A signal stopped the replay: what it had read was delivered (or
		// failed again), the rest of --from was not read. It is no clean
		// replay: a script must not take it for one and delete --from.
		fmt.Fprintf(stderr, "sluice dlq replay: interrupted before the end of --from %s: only the %d events above were replayed; replaying it again delivers those again\n", *from, st.In)
		return exitFailed
	}
	if st.DeadLettered > 0 {
		return exitFailed
	}
	return exitOK
}

// defaultFailed names the file for the events that fail again when a
// replay of from (a file or a glob) gives no --failed: FROM.failed.jsonl
// with any glob characters replaced by "_", or FROM.failed when the pattern
// matches that (dlq/*.jsonl matches dlq/_.failed.jsonl). ok is false when
// the pattern matches both (dlq/*): then --failed must be given.
func defaultFailed(from string, matched []string) (name string, ok bool) {
	base := strings.TrimSuffix(from, filepath.Ext(from))
	dir, file := filepath.Split(base)
	dir = strings.Map(unglob, dir)
	file = strings.Map(unglob, file)
	for _, ext := range []string{".failed.jsonl", ".failed"} {
		name = dir + file + ext
		if !replays(from, matched, name) {
			return name, true
		}
	}
	return "", false
}

// unglob replaces the characters filepath.Match gives a meaning to.
func unglob(r rune) rune {
	switch r {
	case '*', '?', '[', ']', '\\':
		return '_'
	}
	return r
}

// replays reports whether a replay of from (the files it matched: matched)
// reads failed, now or once failed exists.
func replays(from string, matched []string, failed string) bool {
	fa := abs(failed)
	for _, p := range []string{from, abs(from)} {
		for _, f := range []string{failed, fa} {
			if ok, _ := filepath.Match(p, f); ok {
				return true
			}
		}
	}
	fi, ferr := os.Stat(failed)
	for _, m := range matched {
		if abs(m) == fa {
			return true
		}
		if ferr == nil {
			if mi, err := os.Stat(m); err == nil && os.SameFile(fi, mi) {
				return true
			}
		}
	}
	return false
}

// closeUnused closes a built component the command does not run.
func closeUnused(ctx context.Context, c any) {
	if cl, ok := c.(component.Closer); ok {
		_ = cl.Close(ctx)
	}
}

// kafkaTopic returns the topic of a kafka://brokers/topic address.
func kafkaTopic(addr string) string {
	if u, err := url.Parse(addr); err == nil {
		if t := strings.Trim(u.Path, "/"); t != "" {
			return t
		}
	}
	return "kafka-dlq"
}

func toAnyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
