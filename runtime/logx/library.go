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
// line with its library. Left alone, those lines would go to stderr as
// plain text in the middle of a JSON log, where log shippers trip on them.
// The last logger given wins: it is process-wide, as the log package is.
func CaptureLibraryLogs(l zerolog.Logger) {
	libraryLogger.Store(&l)
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(LibraryWriter("go"))
}

// LibraryWriter is the writer for a library's own *log.Logger (made with
// flags 0): its lines go where CaptureLibraryLogs said, as library lib's,
// and to stderr until it is called.
func LibraryWriter(lib string) io.Writer { return libraryWriter(lib) }

type libraryWriter string

func (w libraryWriter) Write(p []byte) (int, error) {
	l := libraryLogger.Load()
	if l == nil {
		return os.Stderr.Write(p)
	}
	for line := range bytes.Lines(p) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			l.Warn().Str(Library, string(w)).Msg(string(line))
		}
	}
	return len(p), nil
}
