package logx

import (
	"bytes"
	"io"
	"log"
	"os"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Library is the field naming the library that wrote a line through Go's
// log package (CaptureLibraryLogs).
const Library = "library"

var libraryLogger atomic.Pointer[zerolog.Logger]

// CaptureLibraryLogs sends what libraries write through Go's standard log
// package (the metrics library when /proc cannot be read, net/http's
// servers, the MySQL driver through LibraryWriter) to l, one warning per
// message with its library. Left alone, those lines would go to stderr as
// plain text in the middle of a JSON log, where log shippers trip on
// them. It is process-wide, as the log package is: restore puts back what
// was there before (the command that called it returns).
func CaptureLibraryLogs(l zerolog.Logger) (restore func()) {
	prevLogger := libraryLogger.Swap(&l)
	prevOut, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(LibraryWriter("go"))
	return func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
		log.SetPrefix(prevPrefix)
		libraryLogger.Store(prevLogger)
	}
}

// LibraryWriter is the writer for a library's own *log.Logger (made with
// flags 0): its messages go where CaptureLibraryLogs said, as library
// lib's, and to stderr, prefixed "[lib] ", while nothing captures them.
func LibraryWriter(lib string) io.Writer { return libraryWriter(lib) }

type libraryWriter string

func (w libraryWriter) Write(p []byte) (int, error) {
	l := libraryLogger.Load()
	if l == nil {
		line := make([]byte, 0, len(w)+3+len(p))
		line = append(append(append(append(line, '['), w...), "] "...), p...)
		if _, err := os.Stderr.Write(line); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	// A log.Logger writes each message at once: a message of several
	// lines (a stack trace) stays one record.
	if msg := bytes.TrimRight(p, "\r\n"); len(msg) > 0 {
		l.Warn().Str(Library, string(w)).Msg(string(msg))
	}
	return len(p), nil
}
