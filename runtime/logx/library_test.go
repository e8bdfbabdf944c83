package logx_test

import (
	"bytes"
	"encoding/json"
	"log"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/logx"
)

// A message written through the log package, or a library's own logger
// made with LibraryWriter, becomes one JSON warning naming the library;
// restoring puts the log package back as it was.
func TestCaptureLibraryLogs(t *testing.T) {
	before := log.Writer()
	var buf bytes.Buffer
	restore := logx.CaptureLibraryLogs(zerolog.New(&buf))
	log.Printf("ERROR: metrics: cannot open %s", "/proc/self/io")
	driver := log.New(logx.LibraryWriter("mysql"), "", 0)
	driver.Print("packets.go:58 unexpected EOF\n\tat line two\n")
	restore()
	if log.Writer() != before {
		t.Error("the log package's output was not restored")
	}

	var got []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		got = append(got, m)
	}
	want := []map[string]string{
		{"level": "warn", "library": "go", "message": "ERROR: metrics: cannot open /proc/self/io"},
		{"level": "warn", "library": "mysql", "message": "packets.go:58 unexpected EOF\n\tat line two"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d log records %v, want %v", len(got), got, want)
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("record %d: %s = %q, want %q (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}
