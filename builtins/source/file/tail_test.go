package file

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

const tailKeys = "mode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"300ms\"\n"

func ackAll(bs []component.Batch) {
	for _, b := range bs {
		b.Ack(nil)
	}
}

// byGen groups message data by generation, in read order.
func byGen(t *testing.T, ms []message.Message) map[int32][]string {
	t.Helper()
	out := map[int32][]string{}
	for _, m := range ms {
		out[m.Pos.Partition] = append(out[m.Pos.Partition], datas(t, []message.Message{m})...)
	}
	return out
}

func TestTailAppend(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	p := fx.path("app.log")
	writeFile(t, p, "a\nb\n")
	s := fx.open()
	equal(t, "existing", datas(t, msgs(readBatches(t, s, 2))), []string{"a", "b"})
	appendFile(t, p, "c\nd\npar")
	equal(t, "appended", datas(t, msgs(readBatches(t, s, 2))), []string{"c", "d"})
	expectQuiet(t, s, 100*time.Millisecond) // "par" has no newline yet
	appendFile(t, p, "tial\n")
	ms := msgs(readBatches(t, s, 1))
	equal(t, "completed", datas(t, ms), []string{"partial"})
	if ms[0].Pos.Offset != 8 {
		t.Errorf("offset = %d, want 8", ms[0].Pos.Offset)
	}
}

func TestTailRotateRename(t *testing.T) {
	// In a bubble the test's steps take no time on the clock the
	// source's rotate_wait runs on: the old file stays open however slow
	// the machine, and the 50ms pause is exactly 50ms.
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, tailKeys+`path = "app.log"`)
		p := fx.path("app.log")
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.WriteString(lines("old", 0, 3))
		s := fx.open()
		ms := msgs(readBatches(t, s, 3))

		// logrotate "create": rename, then a new file; the writer keeps writing
		// to the old one for a while before it reopens.
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
		w.WriteString(lines("old", 3, 5))
		writeFile(t, p, lines("new", 0, 2))
		ms = append(ms, msgs(readBatches(t, s, 4))...)
		time.Sleep(50 * time.Millisecond) // the bubble's clock
		w.WriteString(lines("old", 5, 6) + "unterminated")
		appendFile(t, p, lines("new", 2, 3))
		ms = append(ms, msgs(readBatches(t, s, 3))...) // the unterminated line after rotate_wait
		g := byGen(t, ms)
		equal(t, "old file", g[0], append(want("old", 0, 6), "unterminated"))
		equal(t, "new file", g[1], want("new", 0, 3))
		for _, m := range ms {
			if m.Pos.Stream != p {
				t.Fatalf("stream %q, want the path %q for both generations", m.Pos.Stream, p)
			}
		}
		expectQuiet(t, s, 100*time.Millisecond)
	})
}

func TestTailCopyTruncate(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	p := fx.path("app.log")
	writeFile(t, p, lines("before", 0, 5))
	s := fx.open()
	ackAll(readBatches(t, s, 5))
	// logrotate "copytruncate": copy the content away, truncate in place.
	data, _ := os.ReadFile(p)
	writeFile(t, p+".1", string(data))
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, lines("after", 0, 2))
	ms := msgs(readBatches(t, s, 2))
	equal(t, "after truncation", datas(t, ms), want("after", 0, 2))
	if ms[0].Pos.Partition != 1 || ms[0].Pos.Offset != 0 {
		t.Errorf("position after truncation = %+v; want generation 1, offset 0", ms[0].Pos)
	}
}

func TestTailWaitsForFile(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "later/app.log"`)
	s := fx.open()
	expectQuiet(t, s, 50*time.Millisecond)
	os.MkdirAll(fx.path("later"), 0o755)
	p := fx.path("later/app.log")
	writeFile(t, p, "first\n")
	bs := readBatches(t, s, 1)
	ackAll(bs)
	// Deleted with nothing in its place, then created again: a new generation.
	os.Remove(p)
	expectQuiet(t, s, 400*time.Millisecond)
	writeFile(t, p, "second\n")
	ms := msgs(readBatches(t, s, 1))
	equal(t, "recreated", datas(t, ms), []string{"second"})
	if ms[0].Pos.Partition != 1 {
		t.Errorf("recreated file generation = %d, want 1", ms[0].Pos.Partition)
	}
}

// TestTailStartEnd: start = "end" skips what the file held when the task
// first ran, and that starting point is durable at once: a restart before
// any acknowledgement does not jump to the end again.
func TestTailStartEnd(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\nstart = \"end\"")
	p := fx.path("app.log")
	writeFile(t, p, "old1\nold2\npart")
	s := fx.open()
	expectQuiet(t, s, 50*time.Millisecond)
	appendFile(t, p, "ial\nnew\n")
	equal(t, "after start", datas(t, msgs(readBatches(t, s, 2))), []string{"partial", "new"})
	closeSource(t, s) // nothing acknowledged
	appendFile(t, p, "x\n")
	s = fx.open()
	equal(t, "after restart", datas(t, msgs(readBatches(t, s, 3))), []string{"partial", "new", "x"})
}

func TestTailGlob(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "logs/*.log"`)
	os.MkdirAll(fx.path("logs"), 0o755)
	writeFile(t, fx.path("logs/a.log"), "a1\n")
	s := fx.open()
	b := readBatches(t, s, 1)
	if b[0].Lane != fx.path("logs/a.log") {
		t.Fatalf("lane %q", b[0].Lane)
	}
	writeFile(t, fx.path("logs/b.log"), "b1\n")
	writeFile(t, fx.path("logs/b.txt"), "ignored\n")
	b = readBatches(t, s, 1)
	if b[0].Lane != fx.path("logs/b.log") || datas(t, b[0].Messages)[0] != "b1" {
		t.Fatalf("new file: lane %q data %q", b[0].Lane, datas(t, b[0].Messages))
	}
}

// TestTailRestartExact drives acknowledgements by hand over several runs:
// each run reads what is there, acknowledges a prefix of its batches (in
// order; the rest are withheld), appends more lines and closes. The lines
// of acknowledged batches, concatenated over all runs, must be every line
// exactly once and in order: a graceful restart neither skips nor repeats.
func TestTailRestartExact(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\nbatch = { max_events = 3 }")
	p := fx.path("app.log")
	rng := rand.New(rand.NewPCG(1, 2))
	written, next := 0, 0
	var acked []string
	for run := range 8 {
		n := 1 + rng.IntN(20)
		appendFile(t, p, lines("l", written, written+n))
		written += n
		s := fx.open()
		bs := readBatches(t, s, written-next)
		got := datas(t, msgs(bs))
		equal(t, fmt.Sprintf("run %d reads from the first unacknowledged line", run), got, want("l", next, written))
		k := rng.IntN(len(bs) + 1)
		if run == 7 {
			k = len(bs)
		}
		for _, b := range bs[:k] {
			b.Ack(nil)
			acked = append(acked, datas(t, b.Messages)...)
			next += len(b.Messages)
		}
		if k < len(bs) && rng.IntN(2) == 0 {
			bs[k].Ack(fmt.Errorf("task stopped")) // a failed batch, then nothing
		}
		closeSource(t, s)
	}
	equal(t, "acknowledged over all runs", acked, want("l", 0, written))
}

// TestTailRestartFindsRotated: the file was rotated while the task was
// stopped; the next run finishes the rotated file (found by its inode next
// to the path) before reading the new one.
func TestTailRestartFindsRotated(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	p := fx.path("app.log")
	writeFile(t, p, lines("l", 0, 3))
	s := fx.open()
	ackAll(readBatches(t, s, 3))
	closeSource(t, s)
	appendFile(t, p, lines("l", 3, 5))
	os.Rename(p, p+"-20261125")
	writeFile(t, p, lines("n", 0, 2))
	s = fx.open()
	g := byGen(t, msgs(readBatches(t, s, 4)))
	equal(t, "rotated, finished first", g[0], want("l", 3, 5))
	equal(t, "new file", g[1], want("n", 0, 2))
}

// TestTailRestartTruncated: the file shrank while the task was stopped.
func TestTailRestartTruncated(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	p := fx.path("app.log")
	writeFile(t, p, lines("long line ", 0, 5))
	s := fx.open()
	ackAll(readBatches(t, s, 5))
	closeSource(t, s)
	os.Truncate(p, 0)
	appendFile(t, p, "x\n")
	s = fx.open()
	ms := msgs(readBatches(t, s, 1))
	equal(t, "after truncation", datas(t, ms), []string{"x"})
	if ms[0].Pos.Partition != 1 {
		t.Errorf("generation = %d, want 1", ms[0].Pos.Partition)
	}
}

func TestTailLocked(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	fx.open()
	s := fx.build()
	err := s.Open(context.Background())
	if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "another sluice process") {
		t.Fatalf("second Open = %v; want a task-permanent lock error", err)
	}
	closeSource(t, s)
}

func TestTailCorruptCheckpoint(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	writeFile(t, fx.path("app.log"), "a\n")
	ck := filepath.Join(fx.state, "t1", "source.file.json")
	os.MkdirAll(filepath.Dir(ck), 0o755)
	writeFile(t, ck, "not json")
	s := fx.open()
	equal(t, "without checkpoint", datas(t, msgs(readBatches(t, s, 1))), []string{"a"})
	if _, err := os.Stat(ck + ".bad"); err != nil {
		t.Errorf("corrupt checkpoint not moved aside: %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	s := fx.open()
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(context.Background())
		done <- err
	}()
	testkit.WaitBlocked(t, "(*Source).Read")
	closeSource(t, s)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read returned a batch after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

// TestTailMultiline: in tail mode an event is complete when the next start
// line arrives or when its file stays quiet for multiline.timeout.
func TestTailMultiline(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\n[multiline]\nstart_pattern = '^\\['\ntimeout = \"150ms\"")
	p := fx.path("app.log")
	writeFile(t, p, "[1] boom\n  at a\n")
	s := fx.open()
	expectQuiet(t, s, 50*time.Millisecond) // the event may still grow
	appendFile(t, p, "  at b\n[2] next\n")
	equal(t, "closed by the next start", datas(t, msgs(readBatches(t, s, 1))), []string{"[1] boom\n  at a\n  at b"})
	start := time.Now()
	equal(t, "closed by the timeout", datas(t, msgs(readBatches(t, s, 1))), []string{"[2] next"})
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("event emitted after %v, before the timeout", d)
	}
}

// TestTailNackAcrossRotation: a failed batch of a rotated file rewinds the
// lane to it; the rotated file and then the new one are read again.
func TestTailNackAcrossRotation(t *testing.T) {
	fx := newFixture(t, tailKeys+"path = \"app.log\"\nbatch = { max_events = 2 }")
	p := fx.path("app.log")
	writeFile(t, p, lines("old", 0, 4))
	s := fx.open()
	old := readBatches(t, s, 4)
	os.Rename(p, p+".1")
	writeFile(t, p, lines("new", 0, 2))
	nw := readBatches(t, s, 2)
	old[0].Ack(nil)
	old[1].Ack(fmt.Errorf("blocked"))
	nw[0].Ack(fmt.Errorf("blocked"))
	g := byGen(t, msgs(readBatches(t, s, 4)))
	equal(t, "old file again from the failed batch", g[0], want("old", 2, 4))
	equal(t, "new file again", g[1], want("new", 0, 2))
}

// TestTailGlobIgnoresRotatedName: a pattern that also matches the rotated
// name does not read the rotated file a second time while it is drained.
func TestTailGlobIgnoresRotatedName(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "logs/app*"`)
	os.MkdirAll(fx.path("logs"), 0o755)
	p := fx.path("logs/app.log")
	writeFile(t, p, lines("l", 0, 2))
	s := fx.open()
	ackAll(readBatches(t, s, 2))
	os.Rename(p, p+".1")
	appendFile(t, p+".1", lines("l", 2, 3))
	writeFile(t, p, lines("n", 0, 1))
	bs := readBatches(t, s, 2)
	ackAll(bs)
	for _, m := range msgs(bs) {
		if m.Pos.Stream != p {
			t.Fatalf("line read as part of %s", m.Pos.Stream)
		}
	}
	// Past rotate_wait the rotated file is finished, and still not read
	// again under its new name.
	expectQuiet(t, s, 700*time.Millisecond)
}
