package file

import (
	"strings"
	"testing"
)

// TestStartEndFileWithOnlyPartialLine: start = "end" starts "after the last
// complete line, so a line being written is read whole". A file holding
// only a line being written (no newline yet) has no complete line: the
// line is read whole. It was read from its end (review).
func TestStartEndFileWithOnlyPartialLine(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\nstart = \"end\"")
	p := fx.path("app.log")
	writeFile(t, p, "partial")
	s := fx.open()
	appendFile(t, p, "-done\nnext\n")
	equal(t, "after start", datas(t, msgs(readBatches(t, s, 2))), []string{"partial-done", "next"})
}

// TestStartEndLongPartialLine: the same when the line being written is
// longer than 64 KiB so far (the source looked back 64 KiB only).
func TestStartEndLongPartialLine(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\nstart = \"end\"")
	p := fx.path("app.log")
	long := strings.Repeat("x", 70000)
	writeFile(t, p, "old\n"+long)
	s := fx.open()
	appendFile(t, p, "-done\nnext\n")
	got := datas(t, msgs(readBatches(t, s, 2)))
	if len(got[0]) > 40 {
		got[0] = got[0][:10] + "…(" + itoa(len(got[0])) + " bytes)"
	}
	equal(t, "after start", got, []string{"xxxxxxxxxx…(70005 bytes)", "next"})
}
