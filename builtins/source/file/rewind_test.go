package file

import (
	"fmt"
	"os"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// A rotated file gets lines after the rename (a late writer) that are read
// after a batch of the new file; that batch fails. The rewind reads again
// every batch after the failed one, the rotated file's included: it used to
// rewind the new file only, so the rotated file's later lines were neither
// read again nor ever committed, which kept the file open and in the
// checkpoint for good, and read them again after a restart.
func TestTailNackOfNewFileRewindsRotatedFileReadAfterIt(t *testing.T) {
	fx, s, p, nw := rotatedWithNewBatch(t)
	appendFile(t, p+".1", "a2\n")
	late := readBatches(t, s, 1) // the rotated file, after it
	equal(t, "read order", append(datas(t, nw[0].Messages), datas(t, late[0].Messages)...), []string{"b1", "a2"})
	nw[0].Ack(fmt.Errorf("blocked"))
	late[0].Ack(nil) // handled, but after a failed batch of its lane
	again := readBatches(t, s, 2)
	g := byGen(t, msgs(again))
	equal(t, "rotated file again from its later lines", g[0], []string{"a2"})
	equal(t, "new file again", g[1], []string{"b1"})
	ackAll(again)
	// Everything read was handled: a restart reads only what comes next.
	closeSource(t, s)
	appendFile(t, p, "b2\n")
	s = fx.open()
	equal(t, "after a restart", datas(t, readBatches(t, s, 1)[0].Messages), []string{"b2"})
}

// rotatedWithNewBatch starts a tail source on app.log holding a1
// (delivered), renames it to app.log.1 (rotate_wait long), writes b1 to a
// new app.log and reads the new file's batch, not acknowledged yet.
func rotatedWithNewBatch(t *testing.T) (fx *fixture, s *Source, path string, nw []component.Batch) {
	t.Helper()
	fx = newFixture(t, "mode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"1h\"\npath = \"app.log\"\n")
	p := fx.path("app.log")
	writeFile(t, p, "a1\n")
	s = fx.open()
	ackAll(readBatches(t, s, 1))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "b1\n")
	nw = readBatches(t, s, 1) // the new file (generation 1)
	return fx, s, p, nw
}
