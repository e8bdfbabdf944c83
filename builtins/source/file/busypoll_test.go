package file

import (
	"context"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// TestBusyGlobStillPolls: one file of a glob always has data, so every
// Read finds a batch. Files are still polled every poll_interval: b.log,
// truncated (copytruncate) while a.log is busy, is noticed as truncated
// and read again from its start. The source polled only when no file had
// data: the truncation went unnoticed, and once b.log grew past the old
// position it was read from there, its first lines lost and the line
// under that position cut.
func TestBusyGlobStillPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, tailKeys+`path = "*.log"`)
		a, b := fx.path("a.log"), fx.path("b.log")
		writeFile(t, a, "a\n")
		writeFile(t, b, "b0-0123456789\n")
		s := fx.open()
		readN(t, s, 2, time.Second)

		// Every round a.log gets a line and a poll interval passes (on the
		// bubble's clock), so a.log has data at every Read.
		var gotB []string
		round := func() {
			appendFile(t, a, "a\n")
			time.Sleep(20 * time.Millisecond)
			bt, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			bt.Ack(nil)
			if bt.Lane == b {
				gotB = append(gotB, datas(t, bt.Messages)...)
			}
		}
		if err := os.Truncate(b, 0); err != nil {
			t.Fatal(err)
		}
		appendFile(t, b, "c0\n")
		for range 10 {
			round()
		}
		appendFile(t, b, "c1-0123456789\n")
		for range 10 {
			round()
		}
		equal(t, "b.log after its truncation", gotB, []string{"c0", "c1-0123456789"})
	})
}
