// Package file is the `file` source: it reads newline-delimited events from
// one file or a glob of files, either to their end (mode "read") or
// following them as they grow and rotate (mode "tail"), checkpointing its
// position so that a restart resumes exactly where the last run stopped.
package file

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
)

// EventType is the CloudEvents type of the events the source wraps.
const EventType = "sluice.file.line"

// Config is the `[source] type = "file"` table.
type Config struct {
	Path        string `toml:"path" required:"true" doc:"File to read, relative to the task file's folder. A glob pattern (*, ?, [a-z], as Go's path/filepath.Match) reads every matching file, each as its own ordered stream; in tail mode the pattern is re-evaluated at every poll so new files are picked up. The pattern should match live files only, not their rotated names (app.log, not app.log*)."`
	Mode        string `toml:"mode" enum:"read,tail" doc:"read: read the file(s) to their end, then finish (a finite run); an interrupted run resumes from its checkpoint, a completed one reads everything again next time. tail: follow the file(s) forever, across rotation and truncation, from a checkpointed position."`
	Format      string `toml:"format" enum:"auto,json,cloudevents" doc:"How a line becomes an event: auto (CloudEvents taken as they are, other JSON wrapped as data, other text wrapped as a string), json (a line that is not JSON goes to the dead-letter queue), cloudevents (a line that is not a CloudEvent goes to the dead-letter queue)."`
	InvalidUTF8 string `toml:"invalid_utf8" enum:"replace,reject" doc:"What a line holding bytes that are not valid UTF-8 becomes: replace (each such byte becomes U+FFFD, so the event is valid JSON) or reject (the line goes to the dead-letter queue at stage decode, its bytes kept in event_base64)."`
	Start       string `toml:"start" enum:"beginning,end" doc:"Tail mode: where to start in files that exist when the task first runs (with no checkpoint yet). Files that appear later, and every file once a checkpoint exists, are read from their checkpointed position or from their beginning."`

	MaxEventSize component.ByteSize `toml:"max_event_size" doc:"Longest line (or multiline event) accepted; a longer one goes to the dead-letter queue at stage decode with its first max_event_size bytes. 0: the process-wide event limit."`
	Batch        BatchConfig        `toml:"batch" doc:"Size of the batches handed to the task."`
	PollInterval component.Duration `toml:"poll_interval" doc:"Tail mode: how often idle files are checked for new data, rotation, truncation and (with a glob) new files."`
	RotateWait   component.Duration `toml:"rotate_wait" doc:"Tail mode: how long a rotated (renamed or deleted) file keeps being read after its last new data, for writers that reopen late. Its unterminated last line is emitted when this expires."`
	Multiline    MultilineConfig    `toml:"multiline" doc:"Join several lines into one event (stack traces). Absent: every line is an event."`
	MaxOpenFiles int                `toml:"max_open_files" min:"1" max:"100000" doc:"Most files the source keeps open at once. Past it, files idle at their end are closed and reopened at their position when they grow, so a glob may match any number of files. The source also keeps to half the process's open-file limit (RLIMIT_NOFILE)."`
	Concurrency  int                `toml:"concurrency" min:"1" max:"32" doc:"Workers processing the source's batches; order is kept per file whatever the value."`
	Order        string             `toml:"order" enum:"partition,key,none" doc:"Ordering across workers: partition keeps each file in order (the file source has no keys, so key behaves as partition); none drops ordering."`
}

// BatchConfig bounds one batch.
type BatchConfig struct {
	MaxEvents int                `toml:"max_events" min:"1" max:"100000" doc:"Most events in one batch."`
	MaxBytes  component.ByteSize `toml:"max_bytes" doc:"Batch size in payload bytes after which no more events are added (a batch always holds at least one event)."`
}

// MultilineConfig joins continuation lines into one event.
type MultilineConfig struct {
	StartPattern string             `toml:"start_pattern" required:"true" doc:"Regular expression (Go RE2 syntax) matching the first line of an event; empty: multiline is off, e.g. '^\\d{4}-\\d{2}-\\d{2} ' or '^\\S'. Lines that do not match are appended to the event before them, joined with '\\n'."`
	Timeout      component.Duration `toml:"timeout" doc:"Tail mode: an event whose file has no new data for this long is complete (it is otherwise complete when the next start line arrives)."`
}

// New returns a Config with the documented defaults.
func New() *Config {
	return &Config{
		Mode:         "read",
		Format:       string(lineformat.Auto),
		InvalidUTF8:  string(lineformat.Replace),
		Start:        "beginning",
		Batch:        BatchConfig{MaxEvents: 1000, MaxBytes: 1 << 20},
		PollInterval: component.Duration(250 * time.Millisecond),
		RotateWait:   component.Duration(5 * time.Second),
		Multiline:    MultilineConfig{Timeout: component.Duration(time.Second)},
		MaxOpenFiles: defaultMaxOpenFiles,
		Concurrency:  1,
		Order:        "partition",
	}
}

// defaultMaxOpenFiles is max_open_files when the task does not set it.
const defaultMaxOpenFiles = 256

// openBudget returns how many files the source may keep open: max_open_files,
// but at most half the process's open-file limit, which the sink, the
// checkpoint, connections and other tasks share.
func openBudget(configured int) int {
	if configured <= 0 {
		configured = defaultMaxOpenFiles
	}
	if lim := openFileLimit(); lim > 0 {
		configured = min(configured, max(1, lim/2))
	}
	return configured
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	if _, err := filepath.Match(c.Path, ""); err != nil {
		p.Addf([]string{"path"}, "invalid glob pattern %q: %v (escape a literal *, ? or [ with '\\')", c.Path, err)
	}
	if c.MaxEventSize < 0 || c.MaxEventSize > 1<<30 {
		p.Addf([]string{"max_event_size"}, "must be between 0 and 1GiB, got %s", c.MaxEventSize)
	}
	if c.Batch.MaxBytes < 1 {
		p.Addf([]string{"batch", "max_bytes"}, "must be at least 1 byte")
	}
	if c.PollInterval.D() < 10*time.Millisecond {
		p.Addf([]string{"poll_interval"}, "must be at least 10ms, got %s", c.PollInterval)
	}
	if m := c.Multiline; m.StartPattern != "" {
		if _, err := regexp.Compile(m.StartPattern); err != nil {
			p.Addf([]string{"multiline", "start_pattern"}, "invalid regular expression: %v", err)
		}
	}
}

// Register adds the file source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "file",
		Summary: "Read NDJSON or log lines from files, to their end or following them across rotation.",
		Description: "Each line of a file becomes one event (or, with `multiline`, each group of lines). " +
			"Wrapped events have `source` = `file://<absolute path>`, `type` = `" + EventType + "` and " +
			"`id` = `<absolute path>-<generation>-<byte offset>`, where the generation counts the files that " +
			"have been at that path (it grows at each rotation or truncation), so a replayed line keeps its id " +
			"and ids never repeat across rotations. Empty and blank lines are skipped. " +
			"In tail mode the position is checkpointed in the state directory once the task has handled the " +
			"events: a graceful restart neither skips nor repeats a line, a crash may repeat lines that were in " +
			"flight but never skips one. See docs/connectors/file.md.",
		Example: "[source]\ntype = \"file\"\npath = \"logs/app.log\"\nmode = \"tail\"\nformat = \"auto\"\n\n" +
			"[source.multiline]\nstart_pattern = '^\\d{4}-\\d{2}-\\d{2}'\n",
		New:   func() any { return New() },
		Build: build,
	})
}

func build(cfg any, env component.Env) (any, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("file source: unexpected config type %T", cfg)
	}
	if c.Path == "" {
		return nil, fmt.Errorf("file source: path must not be empty")
	}
	pattern := c.Path
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(env.Dir, pattern)
	}
	pattern = filepath.Clean(pattern)
	if !filepath.IsAbs(pattern) {
		abs, err := filepath.Abs(pattern)
		if err != nil {
			return nil, fmt.Errorf("file source: resolve %q: %w", c.Path, err)
		}
		pattern = abs
	}
	limit := c.MaxEventSize.Int()
	if limit == 0 {
		limit = env.MaxEvent
	}
	if limit <= 0 {
		limit = 1 << 20
	}
	o := options{
		pattern:    pattern,
		glob:       hasMeta(c.Path),
		tail:       c.Mode == "tail",
		format:     lineformat.Format(c.Format),
		utf8:       lineformat.UTF8Policy(c.InvalidUTF8),
		startAtEnd: c.Start == "end",
		limit:      limit,
		built:      env.MaxEvent,
		maxEvents:  c.Batch.MaxEvents,
		maxBytes:   c.Batch.MaxBytes.Int(),
		poll:       c.PollInterval.D(),
		rotateWait: c.RotateWait.D(),
		maxOpen:    openBudget(c.MaxOpenFiles),
		stateDir:   env.StateDir,
		taskDir:    env.Dir,
		task:       env.Task,
		logger:     env.Logger,
	}
	if m := c.Multiline; m.StartPattern != "" {
		re, err := regexp.Compile(m.StartPattern)
		if err != nil {
			return nil, fmt.Errorf("file source: multiline.start_pattern: %w", err)
		}
		o.multiline = re
		o.multilineTimeout = m.Timeout.D()
	}
	if o.task == "" {
		o.task = "task"
	}
	return newSource(o), nil
}

// hasMeta reports whether path holds glob metacharacters.
func hasMeta(path string) bool {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}

// sourceURI is the CloudEvents source attribute of a file's events.
func sourceURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}
