package file

import (
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// TestFileBackAtItsPathIsNotReadAgain: the file at the path is moved away
// (the poll sees it gone: a rotation) and back before its rotate_wait ends.
// It is the live file again; when it has been quiet for rotate_wait it was
// finished as a rotated file and then read again from its start as the
// next generation, every line twice.
func TestFileBackAtItsPathIsNotReadAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, tailKeys+`path = "app.log"`)
		p := fx.path("app.log")
		writeFile(t, p, lines("l", 0, 2))
		s := fx.open()
		equal(t, "first", readN(t, s, 2, time.Second), want("l", 0, 2))

		if err := os.Rename(p, p+".tmp"); err != nil {
			t.Fatal(err)
		}
		expectQuiet(t, s, 50*time.Millisecond) // polls see the path empty
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		appendFile(t, p, lines("l", 2, 3))
		equal(t, "appended while back", readN(t, s, 1, time.Second), want("l", 2, 3))

		expectQuiet(t, s, time.Second) // past rotate_wait, on the bubble's clock
		appendFile(t, p, lines("l", 3, 4))
		equal(t, "appended later", readN(t, s, 1, time.Second), want("l", 3, 4))
	})
}
