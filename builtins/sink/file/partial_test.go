package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// A batch that rotates part way and then fails (the rotation cannot rename
// the files, the disk is full in the new file) has written the records
// before the rotation: the Write reports only the others failed, so that
// the retry writes each record once.
func TestFailureAfterRotationRetriesOnlyUnwrittenRecords(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, "path = \"r.log\"\nmax_size = \"10\"\nmax_files = 3\nfsync = \"batch\"", nil)
	p := filepath.Join(dir, "r.log")
	// A folder at r.log.3 that is not empty: the rotation cannot remove it.
	if err := os.MkdirAll(filepath.Join(p+".3", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	msgs := payloads(`"aaaaaa"`, `"bbbbbb"`, `"cccccc"`)
	err := s.Write(context.Background(), msgs)
	if err == nil {
		t.Fatal("Write: nil, want the failed rotation")
	}
	if err := os.RemoveAll(p + ".3"); err != nil {
		t.Fatal(err)
	}
	// Retry as the engine does: the records a RecordErrors lists, or the
	// whole batch.
	var again []message.Message
	var re *component.RecordErrors
	if errors.As(err, &re) {
		for i := range msgs {
			if e := re.Errs[i]; e != nil {
				if component.ClassOf(e) != component.ClassRetryable {
					t.Fatalf("record %d: %v (%s), want retryable", i, e, component.ClassOf(e))
				}
				again = append(again, msgs[i])
			}
		}
	} else {
		again = msgs
	}
	for len(again) > 0 {
		err := s.Write(context.Background(), again)
		if err == nil {
			break
		}
		if !errors.As(err, &re) {
			t.Fatalf("retry: %v", err)
		}
		var next []message.Message
		for i := range again {
			if re.Errs[i] != nil {
				next = append(next, again[i])
			}
		}
		again = next
	}
	var got []string
	for _, name := range []string{p + ".3", p + ".2", p + ".1", p} {
		if _, err := os.Stat(name); err == nil {
			got = append(got, readLines(t, name)...)
		}
	}
	equal(t, "records in r.log.3 .. r.log", got, []string{`"aaaaaa"`, `"bbbbbb"`, `"cccccc"`})
}
