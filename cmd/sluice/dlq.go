package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/builtins/sink/file"
	"github.com/sluicehq/sluice/builtins/source/dlq"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// dlqCmd inspects and replays dead-letter files.
func dlqCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: sluice dlq show FILE... | sluice dlq replay TASK.toml --from FILE [options]")
		return exitUsage
	}
	switch args[0] {
	case "show":
		return dlqShow(args[1:], stdout, stderr)
	case "replay":
		return dlqReplay(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sluice dlq: unknown subcommand %q (want show or replay)\n", args[0])
	return exitUsage
}

// dlqShow summarises dead-letter files: records by task, stage and error
// class, with one sample message each.
func dlqShow(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: sluice dlq show FILE...")
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
	fs := newFlagSet("dlq replay", stderr, "dlq replay TASK.toml --from DLQ.jsonl [--stage S]... [--skip-transforms] [--failed FILE]")
	from := fs.String("from", "", "dead-letter file to replay (a glob reads several), or a Kafka dead-letter topic as kafka://host:port[,host:port]/topic")
	var stages multiFlag
	fs.Var(&stages, "stage", "only records of this stage (decode, filter, transform, transform[N], sink); repeatable")
	skip := fs.Bool("skip-transforms", false, "send the events to the sink without the filter and transforms")
	failed := fs.String("failed", "", "where events that fail again go (default: FROM.failed.jsonl)")
	var s settings
	check := bindSettings(fs, &s)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if err := check(); err != nil || len(pos) != 1 || *from == "" {
		fmt.Fprintln(stderr, "sluice dlq replay: want one task file and --from")
		fs.Usage()
		return exitUsage
	}
	if *failed == "" {
		*failed = strings.TrimSuffix(*from, filepath.Ext(*from)) + ".failed.jsonl"
		if strings.HasPrefix(*from, "kafka://") {
			_, topic, _ := dlq.ParseKafkaURL(*from)
			*failed = topic + ".failed.jsonl"
		}
	}
	if abs(*failed) == abs(*from) {
		fmt.Fprintln(stderr, "sluice dlq replay: --failed must not be the file being replayed")
		return exitUsage
	}
	terminal := isTerminal(stderr)
	log, err := newLogger(stderr, s.logLevel, s.logFormat, terminal)
	if err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: %v\n", err)
		return exitUsage
	}
	ms := metrics.New()
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, ms, shared)
	task, err := loader.LoadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The task's own source and dead-letter sink are not used.
	if c, ok := task.Source.Instance.(component.Closer); ok {
		c.Close(ctx)
	}
	env := component.Env{Task: task.Name, Dir: ".", MaxEvent: task.Engine.MaxEvent, Logger: log, Shared: shared, Metrics: ms}
	var src component.Source = dlq.New(dlq.Config{Path: abs(*from), Stages: stages, BatchSize: 512}, env)
	if strings.HasPrefix(*from, "kafka://") {
		ks, err := dlq.NewKafka(*from, stages, env)
		if err != nil {
			fmt.Fprintf(stderr, "sluice dlq replay: %v\n", err)
			return exitUsage
		}
		src = ks
	}
	task.Source = config.Component{Type: "dlq", Instance: src}
	if *skip {
		task.Filter, task.Transforms = nil, nil
	}
	fcfg := file.New()
	fcfg.Path = abs(*failed)
	sinkInst, err := buildSink("file", fcfg, env)
	if err != nil {
		fmt.Fprintf(stderr, "sluice dlq replay: %v\n", err)
		return exitFailed
	}
	if task.DeadLetter != nil {
		if c, ok := task.DeadLetter.Instance.(component.Closer); ok {
			c.Close(ctx)
		}
	}
	task.DeadLetter = &config.Component{Type: "file", Instance: sinkInst}
	task.Tolerance = "all"

	run := engine.New(task, engine.Options{Logger: log, Metrics: ms, ShutdownTimeout: s.shutdownTimeout})
	err = run.Run(ctx)
	st := run.Stats()
	fmt.Fprintf(stdout, "replayed %d events: %d delivered, %d filtered, %d failed again (in %s)\n", st.In, st.Delivered, st.Filtered, st.DeadLettered, *failed)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	if st.DeadLettered > 0 {
		return exitFailed
	}
	os.Remove(*failed)
	return exitOK
}

func buildSink(typ string, cfg any, env component.Env) (any, error) {
	spec, ok := registry().Lookup(component.KindSink, typ)
	if !ok {
		return nil, fmt.Errorf("no %s sink in this build", typ)
	}
	return spec.Build(cfg, env)
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
