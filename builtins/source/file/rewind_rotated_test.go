package file

import (
	"fmt"
	"testing"
	"time"
)

// TestNackOfRotatedFileDoesNotReplayAckedNewFile: the new file's batch is
// read and acknowledged (committed); then a late line of the rotated file
// is read and its batch fails. The rewind reads the failed batch again,
// but not the new file's batch, which was handled before it; it was sent
// again and the new file's checkpoint moved back (review).
func TestNackOfRotatedFileDoesNotReplayAckedNewFile(t *testing.T) {
	_, s, p, nw := rotatedWithNewBatch(t)
	equal(t, "new file", datas(t, nw[0].Messages), []string{"b1"})
	nw[0].Ack(nil) // handled: b1 is committed
	appendFile(t, p+".1", "a2\n")
	late := readBatches(t, s, 1) // the rotated file, read after it
	equal(t, "late line", datas(t, late[0].Messages), []string{"a2"})
	late[0].Ack(fmt.Errorf("blocked"))

	again := readBatches(t, s, 1)
	equal(t, "failed batch read again", datas(t, again[0].Messages), []string{"a2"})
	ackAll(again)
	appendFile(t, p, "b2\n")
	next := readOne(t, s, 10*time.Second)
	equal(t, "next batch after the rewind", next, []string{"b2"})
}
