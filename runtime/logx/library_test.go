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

// A line written through the log package, or a library's own logger made
// with LibraryWriter, becomes one JSON warning naming the library.
func TestCaptureLibraryLogs(t *testing.T) {
	var buf bytes.Buffer
	logx.CaptureLibraryLogs(zerolog.New(&buf))
	t.Cleanup(func() { logx.CaptureLibraryLogs(zerolog.Nop()) })
	log.Printf("ERROR: metrics: cannot open %s", "/proc/self/io")
	driver := log.New(logx.LibraryWriter("mysql"), "", 0)
	driver.Print("packets.go:58 unexpected EOF\nsecond line\n")

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
		{"level": "warn", "library": "mysql", "message": "packets.go:58 unexpected EOF"},
		{"level": "warn", "library": "mysql", "message": "second line"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d log lines %v, want %v", len(got), got, want)
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %q, want %q (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}
