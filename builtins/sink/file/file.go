// Package file is the `file` sink: it appends each record's payload as one
// line to a file (NDJSON for JSON payloads), rotating the file by size.
package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the `[sink] type = "file"` table.
type Config struct {
	Path       string             `toml:"path" required:"true" doc:"File to append to, relative to the task file's folder. Several tasks of one process may name the same file (a shared dead-letter file): they share one writer, and must then agree on the other keys."`
	MaxSize    component.ByteSize `toml:"max_size" doc:"Rotate the file before a write would take it past this size: <path> becomes <path>.1, <path>.1 becomes <path>.2 and so on, and a new <path> is started. A single record larger than max_size is written alone in a file. 0: never rotate."`
	MaxFiles   int                `toml:"max_files" min:"1" max:"1000" doc:"Rotated files kept (<path>.1 .. <path>.N, .1 the newest); the oldest is deleted at each rotation beyond that."`
	Fsync      string             `toml:"fsync" enum:"batch,never" doc:"batch: each write returns only once its records are on disk (fsync; concurrent writes share one fsync), so a delivered record survives a power loss. never: a write returns once the records are handed to the operating system, which survives a crash of sluice but not of the machine."`
	FileMode   string             `toml:"file_mode" doc:"Permissions of files the sink creates, in octal (before the process umask)."`
	CreateDirs bool               `toml:"create_dirs" doc:"Create missing parent folders (mode 0755 before the umask)."`
}

// New returns a Config with the documented defaults.
func New() *Config {
	return &Config{MaxFiles: 5, Fsync: "batch", FileMode: "0644", CreateDirs: true}
}

// Validate checks what the tags cannot.
func (c *Config) Validate(p *component.Problems) {
	if _, err := parseMode(c.FileMode); err != nil {
		p.Addf([]string{"file_mode"}, "%v", err)
	}
	if c.MaxSize < 0 {
		p.Addf([]string{"max_size"}, "must not be negative")
	}
}

func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("invalid file mode %q: want octal permissions such as \"0644\" or \"0600\"", s)
	}
	return os.FileMode(m), nil
}

// Register adds the file sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "file",
		Summary: "Append records to a file as lines (NDJSON), with rotation by size.",
		Description: "Each record's payload is written followed by a newline. A JSON payload is written compact " +
			"(insignificant whitespace removed, so it fits on one line); a payload that is not JSON is written as " +
			"it is, unless it holds a newline: such a record is rejected (event-permanent, so it goes to the " +
			"dead-letter queue) rather than breaking the framing, and the other records of the batch are " +
			"written. See docs/connectors/file.md.",
		Example: "[sink]\ntype = \"file\"\npath = \"out/events.jsonl\"\nmax_size = \"100MiB\"\nmax_files = 10\nfsync = \"batch\"\n",
		New:     func() any { return New() },
		Build:   build,
	})
}

func build(cfg any, env component.Env) (any, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("file sink: unexpected config type %T", cfg)
	}
	if c.Path == "" {
		return nil, errors.New("file sink: path must not be empty")
	}
	path := c.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.Dir, path)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("file sink: resolve %q: %w", c.Path, err)
	}
	mode, err := parseMode(c.FileMode)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	return &Sink{
		path: path,
		set: settings{
			maxSize: int64(c.MaxSize), maxFiles: c.MaxFiles, fsync: c.Fsync == "batch",
			mode: mode, mkdir: c.CreateDirs,
		},
		shared: env.Shared,
		log:    env.Logger.With().Str(logx.File, path).Logger(),
	}, nil
}

// Sink is the file sink. Write may be called concurrently.
type Sink struct {
	path   string
	set    settings
	shared *component.Shared
	log    zerolog.Logger
	w      *writer
	table  *table
}

var _ component.Sink = (*Sink)(nil)

// Open opens (or joins the process's writer of) the file.
func (s *Sink) Open(ctx context.Context) error {
	if s.w != nil {
		return nil
	}
	t := &table{files: map[string]*writer{}}
	if s.shared != nil {
		v, err := s.shared.Get(tableKey{}, func() (any, func() error, error) {
			return t, nil, nil
		})
		if err != nil {
			return err
		}
		t = v.(*table)
	}
	w, err := t.acquire(s.path, s.set, s.log)
	if err != nil {
		return err
	}
	s.w, s.table = w, t
	return nil
}

// Write appends msgs to the file and returns once they are written (and
// fsynced with fsync = "batch"). Records that cannot be written as one line
// are reported in a *component.RecordErrors; the others are written.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	if s.w == nil {
		return errors.New("file sink: Write before Open")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.w.write(msgs)
}

// Close flushes the file to disk and closes it (once no other sink of the
// process shares it).
func (s *Sink) Close(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	err := s.table.release(s.w)
	s.w = nil
	return err
}
