package buffer

import (
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the buffer table of a task's sink, ready for component.Decode:
//
//	[sink]
//	buffer = { type = "disk", path = "buffers/orders", max_size = "1GiB", when_full = "block" }
//
// Start from NewConfig (the defaults) and turn the result into Options
// with Config.Options.
type Config struct {
	Type        string             `toml:"type" required:"true" enum:"disk" doc:"Kind of buffer. disk: a size-capped log of segment files that keeps accepted events through a sink outage, a restart and a crash."`
	Path        string             `toml:"path" doc:"Folder of the buffer's files, relative to the task file's folder. One buffer per folder. Default: a folder for the task in the process state directory."`
	MaxSize     component.ByteSize `toml:"max_size" doc:"Most disk space the buffer's files take (at least 4KiB). Space is freed a segment at a time, once the sink has taken all of it."`
	SegmentSize component.ByteSize `toml:"segment_size" doc:"Size of one segment file, the unit in which space is freed or dropped: at least 1KiB and at most half of max_size. Default: max_size/8, at most 64MiB."`
	WhenFull    string             `toml:"when_full" enum:"block,drop_oldest" doc:"When the buffer is full (or the disk is, before max_size): block makes the source wait for the sink (nothing lost; an HTTP ingest answers 503 past its response_timeout); drop_oldest deletes the oldest segment, sent or not, counting its events as dropped by policy."`
	Fsync       string             `toml:"fsync" enum:"append,never" doc:"append: an append returns (and the source is acknowledged) only once its events are on disk, so they survive a power loss. never: once handed to the operating system, which survives a crash of sluice but not of the machine."`
}

// NewConfig returns a Config holding the defaults.
func NewConfig() *Config {
	return &Config{Type: "disk", MaxSize: DefaultMaxSize, WhenFull: string(Block), Fsync: "append"}
}

// Validate reports sizes that Open would refuse.
func (c *Config) Validate(p *component.Problems) {
	if c.MaxSize < minMaxSize {
		p.Addf([]string{"max_size"}, "max_size %d is below the minimum of %d bytes (4KiB)", int64(c.MaxSize), minMaxSize)
		return
	}
	if c.SegmentSize != 0 && (c.SegmentSize < minSegmentSize || int64(c.SegmentSize) > int64(c.MaxSize)/2) {
		p.Addf([]string{"segment_size"}, "segment_size %d must be between %d bytes (1KiB) and half of max_size (%d)", int64(c.SegmentSize), minSegmentSize, int64(c.MaxSize)/2)
	}
}

// Options returns the Options for c. A relative Path is resolved against
// taskDir (the task file's folder); an empty one becomes defaultDir.
func (c *Config) Options(taskDir, defaultDir string, log zerolog.Logger) Options {
	dir := c.Path
	switch {
	case dir == "":
		dir = defaultDir
	case !filepath.IsAbs(dir):
		dir = filepath.Join(taskDir, dir)
	}
	return Options{
		Dir:         dir,
		MaxSize:     int64(c.MaxSize),
		SegmentSize: int64(c.SegmentSize),
		WhenFull:    WhenFull(c.WhenFull),
		NoSync:      c.Fsync == "never",
		Logger:      log,
	}
}
