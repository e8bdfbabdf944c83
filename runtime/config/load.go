package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Loader loads task files. The zero value is not usable: set Registry.
type Loader struct {
	Registry *component.Registry
	// BuildFilter compiles a [filter] table for a task whose largest event
	// is maxEvent bytes; problems go to p (rooted at "filter"). Nil means
	// tasks may not have a filter.
	BuildFilter func(cfg *FilterConfig, maxEvent int, p *component.Problems) Filter
	// LookupEnv resolves ${env:NAME}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// TaskChecks validate what spans components (exactly_once needs Kafka at
	// both ends); they run once every component decoded cleanly.
	TaskChecks []func(t *Task, p *component.Problems)
	// MaxEvent is the default largest event (bytes); 0 means 1 MiB.
	MaxEvent int
	// Capped refuses a task file that raises its own limits above the
	// process's: max_event_size above MaxEvent, a condition_budget above
	// the default. For text from a client (the admin API's playground),
	// which could otherwise lift the memory and time it may take.
	Capped bool
	// Trial loads tasks for a trial run (`sluice test`, the playground):
	// components keep no state of the task's (component.Env.Trial).
	Trial bool
	// Quota is the largest number of tasks one process runs; 0 (or less)
	// means 20.
	Quota    int
	StateDir string
	Shared   *component.Shared
	Metrics  *metrics.Set
	Logger   zerolog.Logger
}

// DefaultMaxEvent is the default limit on one event (docs/configuration.md).
const DefaultMaxEvent = 1 << 20

// MaxEventLimit is the most max_event_size may be. Components size their
// own limits from it (a line reader takes 4 times it, a rendered template
// 4 times plus 64 KiB), which must fit an int on 32-bit arm; and no
// stream's event comes near it.
const MaxEventLimit = 256 << 20

// DefaultConditionBudget is the steps one evaluation of a filter condition
// may take when condition_budget does not say (the filter's own default).
const DefaultConditionBudget = 100_000_000

// DefaultQuota is the default number of tasks one process runs.
const DefaultQuota = 20

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// fileSchema is the top level of a task file. Component tables stay generic
// here; each is decoded against its own spec.
type fileSchema struct {
	Name         string             `toml:"name" required:"true" doc:"Task name: letters, digits and '-', starting with a letter or digit, at most 127 characters."`
	Description  string             `toml:"description" doc:"Free text shown by the admin API (GET /tasks)."`
	Source       map[string]any     `toml:"source" required:"true" doc:"Where events come from."`
	Filter       *FilterConfig      `toml:"filter" doc:"Which events go on."`
	Transform    []map[string]any   `toml:"transform" doc:"The transform chain, applied in order."`
	Sink         map[string]any     `toml:"sink" required:"true" doc:"Where events go."`
	Retry        *retrySchema       `toml:"retry" doc:"How failed deliveries are retried."`
	Errors       *errorsSchema      `toml:"errors" doc:"What happens after the last retry."`
	DeadLetter   map[string]any     `toml:"dead_letter" doc:"A sink receiving events that cannot be delivered, parsed or transformed."`
	MaxInFlight  int                `toml:"max_in_flight" min:"1" max:"4096" doc:"Source batches in flight per task; bounds memory and the duplicates a crash can cause."`
	MaxEventSize component.ByteSize `toml:"max_event_size" doc:"Largest event accepted; larger ones go to the dead-letter queue at stage decode."`
	ExactlyOnce  bool               `toml:"exactly_once" doc:"Kafka to Kafka in transactions (both ends must be Kafka)."`
}

type retrySchema struct {
	Policy     string             `toml:"policy" enum:"backoff,exponential,custom,none" doc:"backoff: 3 retries 10-20 s apart; exponential: 1 s doubling to 512 s, up to 176 retries within a day; custom; none."`
	Attempts   *int               `toml:"attempts" min:"0" max:"1000000" doc:"custom: retries after the first try."`
	Initial    component.Duration `toml:"initial" doc:"custom: first interval."`
	Max        component.Duration `toml:"max" doc:"custom: largest interval."`
	MaxAge     component.Duration `toml:"max_age" doc:"custom: give up once the first try is this old."`
	Multiplier float64            `toml:"multiplier" min:"1" max:"100" doc:"custom: growth of the interval per retry."`
	Jitter     *float64           `toml:"jitter" min:"0" max:"1" doc:"custom: fraction of each interval that is randomized."`
}

type errorsSchema struct {
	Tolerance string `toml:"tolerance" enum:"all,none" doc:"all: after the last retry the event goes to the dead-letter queue and the task goes on; none: the task stops in Blocked, keeping its position."`
}

// Engine keys live in component tables but belong to the engine.
type sourceEngineKeys struct {
	Concurrency int    `toml:"concurrency" min:"1" max:"32" doc:"Workers processing the task's events in parallel."`
	Order       string `toml:"order" enum:"partition,key,none" doc:"What stays in order with several workers: partition (each lane on one worker), key (a lane spread over workers by record key), none."`
}

type sinkBatch struct {
	MaxEvents int                `toml:"max_events" min:"1" max:"1000000" doc:"Most outputs in one sink write."`
	MaxWait   component.Duration `toml:"max_wait" doc:"Longest time a partial batch waits for more outputs; 0: written as soon as the worker has no more input waiting."`
	MaxBytes  component.ByteSize `toml:"max_bytes" doc:"Most payload bytes in one sink write, past its first output; 0: no limit."`
}

// dlqEngineKeys are those of [dead_letter]: no buffer in front of it, and
// no max_wait (the loader rejects it: dead letters are written as soon as
// their batch is settled, never held).
type dlqEngineKeys struct {
	Batch sinkBatch `toml:"batch" doc:"How the engine cuts writes to the dead-letter sink (max_events, max_bytes)."`
}

// TaskFields documents the keys of a task file outside the component
// tables: the top level, [filter], [retry] and [errors].
func TaskFields() []component.Field {
	fs, _ := component.FieldsOf(&fileSchema{})
	return fs
}

// EngineFields documents the engine keys a component table may hold, by
// table: "source" (concurrency, order), "sink" (batch, buffer) and
// "dead_letter" (batch).
func EngineFields() map[string][]component.Field {
	out := map[string][]component.Field{}
	for table, keys := range map[string]any{
		"source":      &sourceEngineKeys{Concurrency: 1, Order: "partition"},
		"sink":        &sinkEngineKeys{Batch: sinkBatch{MaxEvents: 256}, Buffer: buffer.NewConfig()},
		"dead_letter": &dlqEngineKeys{Batch: sinkBatch{MaxEvents: 256}},
	} {
		out[table], _ = component.FieldsOf(keys)
	}
	return out
}

type sinkEngineKeys struct {
	Batch  sinkBatch      `toml:"batch" doc:"How the engine gathers outputs into sink writes."`
	Buffer *buffer.Config `toml:"buffer" doc:"A disk buffer in front of the sink (docs/delivery.md)."`
}

func (l *Loader) lookupEnv(name string) (string, bool) {
	if l.LookupEnv != nil {
		return l.LookupEnv(name)
	}
	return os.LookupEnv(name)
}

// Expand lists the task files named by args: files as they are, folders as
// the task files they hold (FolderTasks).
func Expand(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		m, err := expandArg(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		out = append(out, m...)
	}
	return out, nil
}

// expandArg lists the task files named by one argument; its error does
// not repeat the argument.
func expandArg(a string) ([]string, error) {
	st, err := os.Stat(a)
	if err != nil {
		return nil, fmt.Errorf("cannot read task file: %w", errors.Unwrap(err))
	}
	if !st.IsDir() {
		return []string{a}, nil
	}
	m, err := FolderTasks(a)
	if err != nil {
		return nil, fmt.Errorf("cannot read task folder: %w", errors.Unwrap(err))
	}
	if len(m) == 0 {
		return nil, errors.New("the task folder holds no *.toml files")
	}
	return m, nil
}

// FolderTasks lists the task files of folder dir, sorted: its *.toml
// entries (not recursive), but neither folders nor names starting with
// ".". Those are not tasks: Emacs locks a file it edits with a link
// ".#a.toml" that points nowhere, and tools that replace a file atomically
// write a copy next to it first (Ansible's ".ansible_tmpXXXXa.toml"), so
// loading them made a start or a reload fail on a half-written file or a
// task name used twice. Only regular files are tasks: a folder, a named
// pipe (whose read waits for a writer for ever) or a device is left out. A
// link is followed: a link to a folder is left out, a link to nothing is
// listed (and its load says so). The folder's
// name is taken as it is (filepath.Glob read "tasks[edge]" as a pattern).
func FolderTasks(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("task folder %s: %w", dir, errors.Unwrap(err))
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".toml") || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		mode := e.Type()
		if mode&os.ModeSymlink != 0 {
			if st, err := os.Stat(p); err == nil {
				mode = st.Mode().Type()
			} else {
				mode = 0 // listed: its load names the problem
			}
		}
		if mode.IsRegular() {
			out = append(out, p)
		}
	}
	sort.Strings(out) // ReadDir sorts too; the order is the tasks' order
	return out, nil
}

// LoadAll loads every task file named by args (files or folders), checks
// the task quota and that names are unique, and returns every problem of
// every file at once.
func (l *Loader) LoadAll(args []string) ([]*Task, error) {
	// A file or folder that cannot be listed is one problem among the
	// others: the remaining arguments are still checked, so that every
	// problem shows at once.
	var files []string
	var diags Diagnostics
	for _, a := range args {
		m, err := expandArg(a)
		if err != nil {
			diags = append(diags, Diagnostic{File: a, Msg: err.Error()})
			continue
		}
		files = append(files, m...)
	}
	var tasks []*Task
	names := map[string]string{}
	for _, f := range files {
		t, err := l.LoadFile(f)
		if err != nil {
			var ds Diagnostics
			if errors.As(err, &ds) {
				diags = append(diags, ds...)
				continue
			}
			return nil, err
		}
		if prev, dup := names[t.Name]; dup {
			diags = append(diags, nameDiag(f, fmt.Sprintf("task name %q is already used by %s; names must be unique in one process", t.Name, prev)))
			t.Discard(context.Background())
			continue
		}
		names[t.Name] = f
		tasks = append(tasks, t)
	}
	// A quota <= 0 means the default: the command line refuses negative
	// values, but LoadAll must never index files with one.
	quota := l.Quota
	if quota <= 0 {
		quota = DefaultQuota
	}
	if len(files) > quota {
		diags = append(diags, Diagnostic{File: files[quota], Msg: fmt.Sprintf("%d task files exceed the task quota of %d per process (raise it with --task-quota or SLUICE_TASK_QUOTA, or run more processes)", len(files), quota)})
	}
	if len(diags) > 0 {
		l.closeAll(tasks)
		return nil, diags
	}
	return tasks, nil
}

// nameDiag is a problem with the name of the task of file, located at its
// name key's value.
func nameDiag(file, msg string) Diagnostic {
	data, err := os.ReadFile(file)
	if err != nil {
		return Diagnostic{File: file, Path: "name", Msg: msg}
	}
	ix := buildIndex(bytes.TrimPrefix(data, []byte("\ufeff")))
	return ix.diagnose(file, component.Problem{Path: []string{"name"}, Offset: -1, Msg: msg})
}

// LoadFile reads and loads one task file.
func (l *Loader) LoadFile(path string) (*Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Diagnostics{{File: path, Msg: fmt.Sprintf("cannot read task file: %v", errors.Unwrap(err))}}
	}
	return l.Load(path, data)
}

// Load loads a task from data; file names it in diagnostics and anchors
// relative paths.
func (l *Loader) Load(file string, data []byte) (*Task, error) {
	// A UTF-8 byte order mark (some Windows editors write one) is no part
	// of the first line: the decoder skips it, and positions count from
	// after it, as editors show them. The digest is of the file's bytes.
	text := bytes.TrimPrefix(data, []byte("\ufeff"))
	var tree map[string]any
	if _, err := toml.Decode(string(text), &tree); err != nil {
		return nil, Diagnostics{syntaxDiag(file, text, err)}
	}
	ix := buildIndex(text)
	p := component.NewProblems()
	// Problems found from here on are at offsets in expanded strings;
	// those of the expansion itself are at offsets in the file's.
	xs := expansions{}
	expandTree(tree, l.lookupEnv, p, nil, xs)
	expanded := p.Len()

	var fs fileSchema
	component.Decode(tree, &fs, p)
	dir := filepath.Dir(file)
	t := &Task{Name: fs.Name, Description: fs.Description, File: file, Dir: dir, Digest: sha256.Sum256(data), Tolerance: "all", ExactlyOnce: fs.ExactlyOnce}
	if fs.Name != "" {
		switch n := utf8.RuneCountInString(fs.Name); {
		case n > 127:
			p.Addf([]string{"name"}, "task name is %d characters long; the limit is 127", n)
		case !nameRE.MatchString(fs.Name):
			p.Addf([]string{"name"}, "invalid task name %q: use letters, digits and '-', starting with a letter or digit", fs.Name)
		}
	}
	log := l.Logger.With().Str(logx.Task, fs.Name).Logger()

	t.Engine = Engine{Concurrency: 1, Order: "partition", MaxEvents: 256, MaxEvent: l.MaxEvent}
	if t.Engine.MaxEvent == 0 {
		t.Engine.MaxEvent = DefaultMaxEvent
	}
	if fs.MaxEventSize > MaxEventLimit {
		p.Addf([]string{"max_event_size"}, "%s is above the most an event may be, %s", fs.MaxEventSize, component.ByteSize(MaxEventLimit))
	} else if l.Capped && int(fs.MaxEventSize) > t.Engine.MaxEvent {
		p.Addf([]string{"max_event_size"}, "%s is above the process's limit of %s (--max-event-size): here a task may not raise it",
			fs.MaxEventSize, component.ByteSize(t.Engine.MaxEvent))
	} else if fs.MaxEventSize > 0 {
		t.Engine.MaxEvent = int(fs.MaxEventSize)
	}

	env := func(path []string, kind string) component.Env {
		return component.Env{
			Task:        fs.Name,
			Stage:       component.FormatPath(path),
			Dir:         dir,
			StateDir:    l.StateDir,
			Concurrency: t.Engine.Concurrency,
			MaxInFlight: t.Engine.MaxInFlight,
			ExactlyOnce: t.ExactlyOnce,
			MaxEvent:    t.Engine.MaxEvent,
			Trial:       l.Trial,
			Logger:      log.With().Str(logx.Component, component.FormatPath(path)+"."+kind).Logger(),
			Shared:      l.Shared,
			Metrics:     l.Metrics,
			Problems:    p.At(path...),
		}
	}

	// The source first: its concurrency is part of every component's Env.
	if fs.Source != nil {
		var ek sourceEngineKeys
		ek.Concurrency, ek.Order = 1, "partition"
		ct := l.decodeComponent(component.KindSource, fs.Source, []string{"source"}, p, &ek)
		t.Engine.Concurrency, t.Engine.Order = ek.Concurrency, ek.Order
		if ct != nil {
			t.Source = *ct
		}
	}
	if fs.Sink != nil {
		ek := sinkEngineKeys{Batch: sinkBatch{MaxEvents: 256}, Buffer: buffer.NewConfig()}
		ct := l.decodeComponent(component.KindSink, fs.Sink, []string{"sink"}, p, &ek)
		if ct != nil {
			t.Sink = *ct
			t.Engine.MaxEvents, t.Engine.MaxWait, t.Engine.MaxBytes = ek.Batch.MaxEvents, ek.Batch.MaxWait.D(), ek.Batch.MaxBytes.Int()
		}
		if _, ok := fs.Sink["buffer"]; ok && ek.Buffer != nil {
			// Without a state directory the default buffer sits beside the
			// task file, like other checkpoints.
			state := l.StateDir
			if state == "" {
				state = filepath.Join(dir, ".sluice-state")
			}
			o := ek.Buffer.Options(dir, filepath.Join(state, "buffers", fs.Name), log.With().Str(logx.Component, "sink.buffer").Logger())
			t.Engine.Buffer = &o
		}
	}
	for i, tr := range fs.Transform {
		ct := l.decodeComponent(component.KindTransform, tr, []string{"transform", component.Index(i)}, p, nil)
		if ct != nil {
			t.Transforms = append(t.Transforms, *ct)
		}
	}
	if fs.DeadLetter != nil {
		ek := dlqEngineKeys{Batch: sinkBatch{MaxEvents: 256}}
		if b, ok := fs.DeadLetter["batch"].(map[string]any); ok {
			if _, ok := b["max_wait"]; ok {
				p.KeyErrorf([]string{"dead_letter", "batch", "max_wait"}, "max_wait does not apply to [dead_letter]: dead letters are written as soon as their events fail, never held; remove it")
			}
		}
		ct := l.decodeComponent(component.KindSink, fs.DeadLetter, []string{"dead_letter"}, p, &ek)
		if ct != nil {
			t.DeadLetter = ct
			t.Engine.DeadLetterMaxEvents, t.Engine.DeadLetterMaxBytes = ek.Batch.MaxEvents, ek.Batch.MaxBytes.Int()
		}
	}
	if fs.Filter != nil {
		fp := p.At("filter")
		switch {
		case fs.Filter.Pattern != nil && fs.Filter.PatternJSON != "":
			fp.KeyErrorf([]string{"pattern_json"}, "pattern and pattern_json are exclusive: give the pattern in one form")
		case l.BuildFilter == nil:
			fp.Addf(nil, "filters are not available in this build")
		case l.Capped && fs.Filter.ConditionBudget > DefaultConditionBudget:
			fp.Addf([]string{"condition_budget"}, "%d is above the default of %d steps: here a task may not raise it", fs.Filter.ConditionBudget, DefaultConditionBudget)
		default:
			t.Filter = l.BuildFilter(fs.Filter, t.Engine.MaxEvent, fp)
		}
	}
	t.Retry = retryFrom(fs.Retry, p)
	if fs.Errors != nil && fs.Errors.Tolerance != "" {
		t.Tolerance = fs.Errors.Tolerance
	}
	t.Engine.MaxInFlight = fs.MaxInFlight
	if t.Engine.MaxInFlight == 0 {
		t.Engine.MaxInFlight = max(4, 2*t.Engine.Concurrency)
	}

	// Build only what decoded cleanly: Build may assume a valid config.
	if p.Len() == 0 {
		for _, check := range l.TaskChecks {
			check(t, p)
		}
	}
	if p.Len() == 0 {
		l.build(t, env)
	}
	if p.Len() > 0 {
		l.closeAll([]*Task{t})
		diags := make(Diagnostics, 0, p.Len())
		seen := map[string]bool{}
		for i, pr := range p.List() {
			if i >= expanded {
				pr.Offset = xs.rawOffset(pr.Path, pr.Offset)
			}
			d := ix.diagnose(file, pr)
			// An engine key that the component declares too is checked by
			// both; say it once.
			if k := d.Error(); !seen[k] {
				seen[k] = true
				diags = append(diags, d)
			}
		}
		sort.SliceStable(diags, func(i, j int) bool {
			if diags[i].Line != diags[j].Line {
				return diags[i].Line < diags[j].Line
			}
			return diags[i].Col < diags[j].Col
		})
		return nil, diags
	}
	return t, nil
}

// decodeComponent checks a component table's type and decodes it. Engine
// keys (concurrency, order, batch) are decoded into engineKeys and handed to
// the component too only when its config declares them.
func (l *Loader) decodeComponent(kind component.Kind, tree map[string]any, path []string, p *component.Problems, engineKeys any) *Component {
	cp := p.At(path...)
	typ, ok := tree["type"].(string)
	if !ok {
		if _, present := tree["type"]; present {
			cp.Addf([]string{"type"}, "type must be a string naming the %s (known: %s)", kind, strings.Join(l.Registry.Names(kind), ", "))
		} else {
			cp.KeyErrorf(nil, "missing required key \"type\" (known %s types: %s)", kind, strings.Join(l.Registry.Names(kind), ", "))
		}
		return nil
	}
	spec, ok := l.Registry.Lookup(kind, typ)
	if !ok {
		msg := fmt.Sprintf("unknown %s type %q%s (known: %s)", kind, typ, component.Suggest(typ, l.Registry.Names(kind)), strings.Join(l.Registry.Names(kind), ", "))
		if kind == component.KindTransform {
			msg = "invalid transform: TRANSFORM_KIND: " + msg
		}
		cp.Addf([]string{"type"}, "%s", msg)
		return nil
	}
	cfg := spec.New()
	rest := tree
	if engineKeys != nil {
		declared := map[string]bool{}
		fields, _ := component.FieldsOf(cfg)
		for _, f := range fields {
			declared[f.Name] = true
		}
		mine := map[string]any{}
		rest = map[string]any{}
		for k, v := range tree {
			if isEngineKey(engineKeys, k) {
				mine[k] = v
				if !declared[k] {
					continue
				}
			}
			rest[k] = v
		}
		// The component's own defaults for the keys it declares are the
		// engine's too: what its docs say is what the engine does.
		seedFrom(reflect.ValueOf(engineKeys).Elem(), reflect.ValueOf(cfg).Elem())
		ep := component.NewProblems(path...)
		component.Decode(mine, engineKeys, ep)
		for _, pr := range ep.List() {
			pr.Path = pr.Path[len(path):]
			cp.Add(pr)
		}
	}
	before := p.Len()
	component.Decode(rest, cfg, cp, "type")
	c := &Component{Type: typ, Spec: spec, Config: cfg, Path: path}
	if p.Len() > before {
		c.Spec = nil // not buildable
	}
	return c
}

// seedFrom copies into dst the values of the fields src declares under the
// same TOML key with the same type, descending into tables both declare.
func seedFrom(dst, src reflect.Value) {
	srcFields := map[string]reflect.Value{}
	for i := range src.NumField() {
		if name, _, _ := strings.Cut(src.Type().Field(i).Tag.Get("toml"), ","); name != "" && src.Type().Field(i).IsExported() {
			srcFields[name] = src.Field(i)
		}
	}
	for i := range dst.NumField() {
		name, _, _ := strings.Cut(dst.Type().Field(i).Tag.Get("toml"), ",")
		sv, ok := srcFields[name]
		if !ok || name == "" {
			continue
		}
		dv := dst.Field(i)
		switch {
		case sv.Type() == dv.Type():
			dv.Set(sv)
		case sv.Kind() == reflect.Struct && dv.Kind() == reflect.Struct:
			seedFrom(dv, sv)
		case sv.Type().ConvertibleTo(dv.Type()) && sv.Kind() == dv.Kind():
			dv.Set(sv.Convert(dv.Type()))
		}
	}
}

func isEngineKey(keys any, k string) bool {
	t := reflect.TypeOf(keys).Elem()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name == k {
			return true
		}
	}
	return false
}

func (l *Loader) build(t *Task, env func([]string, string) component.Env) {
	one := func(c *Component, kind component.Kind) {
		if c == nil || c.Spec == nil {
			return
		}
		e := env(c.Path, c.Type)
		before := e.Problems.Len()
		inst, err := c.Spec.Build(c.Config, e)
		if err != nil {
			// A Build that reported precise problems returns a summary too;
			// say it only when it is all there is.
			if e.Problems.Len() == before {
				e.Problems.Addf(nil, "%v", err)
			}
			return
		}
		var ok bool
		switch kind {
		case component.KindSource:
			_, ok = inst.(component.Source)
		case component.KindSink:
			_, ok = inst.(component.Sink)
		case component.KindTransform:
			_, ok = inst.(component.Transform)
		}
		if !ok {
			panic(fmt.Sprintf("%s %q: Build returned %T, not a %s", kind, c.Type, inst, kind))
		}
		c.Instance = inst
	}
	one(&t.Source, component.KindSource)
	for i := range t.Transforms {
		one(&t.Transforms[i], component.KindTransform)
	}
	one(&t.Sink, component.KindSink)
	one(t.DeadLetter, component.KindSink)
}

// closeAll releases what Build created for tasks that will not run.
func (l *Loader) closeAll(tasks []*Task) {
	for _, t := range tasks {
		t.Discard(context.Background())
	}
}

// Discard releases what Build created (compiled modules, say) for a task that
// will not run. Components are closed even though never opened, which
// their contract allows.
func (t *Task) Discard(ctx context.Context) {
	for _, c := range t.components() {
		if cl, ok := c.Instance.(component.Closer); ok {
			_ = cl.Close(ctx)
		}
		c.Instance = nil
	}
}

func (t *Task) components() []*Component {
	out := []*Component{&t.Source}
	for i := range t.Transforms {
		out = append(out, &t.Transforms[i])
	}
	out = append(out, &t.Sink)
	if t.DeadLetter != nil {
		out = append(out, t.DeadLetter)
	}
	return out
}

func retryFrom(rs *retrySchema, p *component.Problems) Retry {
	policy := "backoff"
	if rs != nil && rs.Policy != "" {
		policy = rs.Policy
	}
	r := Retry{Policy: policy}
	switch policy {
	case "backoff":
		// 3 retries, each after a random 10-20 s (docs/delivery.md).
		r.Attempts, r.Initial, r.Max, r.Jitter = 3, 10*time.Second, 20*time.Second, 1
	case "exponential":
		// 1 s doubling to 512 s, up to 176 retries within one day.
		r.Attempts, r.Initial, r.Max, r.Multiplier, r.MaxAge = 176, time.Second, 512*time.Second, 2, 24*time.Hour
	case "none":
	case "custom":
		r.Attempts, r.Initial, r.Max, r.Multiplier, r.Jitter = 3, time.Second, time.Minute, 2, 0.2
		if rs.Multiplier > 0 {
			r.Multiplier = rs.Multiplier
		}
		if rs.Attempts != nil {
			r.Attempts = *rs.Attempts
		}
		if rs.Initial > 0 {
			r.Initial = rs.Initial.D()
		}
		if rs.Max > 0 {
			r.Max = rs.Max.D()
		}
		r.MaxAge = rs.MaxAge.D()
		if rs.Jitter != nil {
			r.Jitter = *rs.Jitter
		}
		if r.Max < r.Initial {
			p.Addf([]string{"retry", "max"}, "max (%s) must not be below initial (%s)", r.Max, r.Initial)
		}
	}
	if rs != nil && policy != "custom" {
		for _, k := range []struct {
			set  bool
			name string
		}{{rs.Attempts != nil, "attempts"}, {rs.Initial > 0, "initial"}, {rs.Max > 0, "max"}, {rs.MaxAge > 0, "max_age"}, {rs.Jitter != nil, "jitter"}, {rs.Multiplier > 0, "multiplier"}} {
			if k.set {
				p.KeyErrorf([]string{"retry", k.name}, "%s applies only to policy = \"custom\" (policy is %q)", k.name, policy)
			}
		}
	}
	return r
}

// syntaxDiag turns a TOML syntax error into a diagnostic.
func syntaxDiag(file string, data []byte, err error) Diagnostic {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// Position.Start is exact; Line can be one past it when the lexer
		// already consumed the newline that ended the faulty construct.
		ix := buildIndex(data)
		off := min(max(pe.Position.Start, 0), len(data))
		d := Diagnostic{File: file, Msg: "invalid TOML: " + pe.Message}
		d.Line, d.Col = ix.lineCol(off)
		d.Snippet = ix.snippet(span{off: off, len: max(pe.Position.Len, 1)})
		return d
	}
	return Diagnostic{File: file, Msg: "invalid TOML: " + err.Error()}
}
