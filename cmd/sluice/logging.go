package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/logx"
)

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// termWriter serialises writes to the terminal so log lines and the
// progress line do not interleave: a log line first erases the progress
// line, which the next tick draws again.
type termWriter struct {
	mu       sync.Mutex
	w        io.Writer
	progress bool // a progress line is on screen
}

func (t *termWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.progress {
		io.WriteString(t.w, "\r\033[K")
		t.progress = false
	}
	return t.w.Write(p)
}

func (t *termWriter) drawProgress(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, "\r\033[K"+line)
	t.progress = true
}

func (t *termWriter) clearProgress() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.progress {
		io.WriteString(t.w, "\r\033[K")
		t.progress = false
	}
}

// Repeated log lines: at most logBurst lines of one message per
// logPeriod, for the whole process (logx.Limiter).
const (
	logBurst  = 100
	logPeriod = 10 * time.Second
)

// newLogger builds the process logger: JSON unless the output is a
// terminal (or the format says otherwise). Every logger of the process
// derives from it, so its limiter of repeated lines applies to the engine
// and every component.
func newLogger(w io.Writer, level, format string, terminal bool) (zerolog.Logger, error) {
	// Only the documented levels: zerolog also takes "", "disabled",
	// "panic" and numbers, which silenced every line, errors included.
	var lvl zerolog.Level
	switch strings.ToLower(level) {
	case "debug":
		lvl = zerolog.DebugLevel
	case "info":
		lvl = zerolog.InfoLevel
	case "warn":
		lvl = zerolog.WarnLevel
	case "error":
		lvl = zerolog.ErrorLevel
	default:
		return zerolog.Logger{}, fmt.Errorf("invalid --log-level (SLUICE_LOG_LEVEL) %q: want debug, info, warn or error", level)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	limit := logx.NewLimiter(logBurst, logPeriod)
	if !jsonLogs(format, terminal) {
		cw := zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !terminal}
		return zerolog.New(cw).Level(lvl).Hook(limit).With().Timestamp().Logger(), nil
	}
	return zerolog.New(w).Level(lvl).Hook(limit).With().Timestamp().Logger(), nil
}

// jsonLogs reports whether the log is JSON lines: unless the format says
// console, or auto on a terminal.
func jsonLogs(format string, terminal bool) bool {
	return !(format == "console" || (format == "auto" && terminal))
}
