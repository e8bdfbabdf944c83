package file

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// readMsgs reads and acks batches until n messages came (or a batch did not
// come within d).
func readMsgs(t *testing.T, s *Source, n int, d time.Duration) []message.Message {
	t.Helper()
	var out []message.Message
	for len(out) < n {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		b, err := s.Read(ctx)
		cancel()
		if err != nil {
			t.Logf("read after %d of %d messages: %v", len(out), n, err)
			break
		}
		checkBatch(t, b)
		b.Ack(nil)
		out = append(out, b.Messages...)
	}
	return out
}

// copytruncate: the multiline event still collecting lines when the file is
// truncated was read before the truncation; it is emitted (it was dropped),
// in its generation, before the events of the next one.
func TestMultilinePendingEventIsEmittedAtCopytruncate(t *testing.T) {
	fx := newFixture(t, "path = \"app.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\n"+
		"[multiline]\nstart_pattern = '^S'\ntimeout = \"1h\"\n")
	p := fx.path("app.log")
	writeFile(t, p, "S1\n c1\nS2\n c2\n")
	s := fx.open()
	// S1 is complete once S2 starts; S2 waits for the next start line (the
	// timeout is far away).
	equal(t, "before the truncation", readOne(t, s, 20*time.Second), []string{"S1\n c1"})
	// logrotate copytruncate: copy, then truncate; the application goes on.
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p+".1", string(data))
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "S3\n c3\nS4\n")
	ms := readMsgs(t, s, 2, 20*time.Second)
	equal(t, "events", datas(t, ms), []string{"S2\n c2", "S3\n c3"})
	if ms[0].Pos.Partition != 0 || ms[0].Pos.Offset != 7 || ms[1].Pos.Partition != 1 || ms[1].Pos.Offset != 0 {
		t.Fatalf("positions %+v, %+v; want generation 0 offset 7, generation 1 offset 0", ms[0].Pos, ms[1].Pos)
	}
	// Every batch was acknowledged: a restart resumes after S3's lines, in
	// the new generation (S4 is still pending, so it is read again).
	closeSource(t, s)
	appendFile(t, p, "S5\n")
	s = fx.open()
	equal(t, "after a restart", readOne(t, s, 20*time.Second), []string{"S4"})
}

// A multiline event still pending when its file is closed under
// max_open_files (parked) is emitted at multiline.timeout like any other: the
// timeout was only checked when the file was read, and a parked file is
// reopened only when it grows, so the event waited for the next line.
func TestMultilinePendingEventOfClosedFileIsEmittedAtTimeout(t *testing.T) {
	fx := newFixture(t, "path = \"*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nmax_open_files = 1\n"+
		"[multiline]\nstart_pattern = '^\\S'\ntimeout = \"100ms\"\n")
	writeFile(t, fx.path("a.log"), "A1\n a2\n")
	writeFile(t, fx.path("b.log"), "B1\n")
	writeFile(t, fx.path("c.log"), "C1\n")
	s := fx.open()
	// Each file's only event waits for the timeout; one file is open at a
	// time, so the others are closed while their event waits (unless the
	// machine is so slow that a timeout passes while its file is open:
	// then the test exercises less, but does not fail).
	ms := readMsgs(t, s, 3, 20*time.Second)
	got := map[string]message.Position{}
	for i, d := range datas(t, ms) {
		got[d] = ms[i].Pos
	}
	for d, off := range map[string]int64{"A1\n a2": 0, "B1": 0, "C1": 0} {
		if pos, ok := got[d]; !ok || pos.Offset != off || pos.Partition != 0 {
			t.Fatalf("events %q: want %q at generation 0 offset %d", datas(t, ms), d, off)
		}
	}
	if len(ms) != 3 {
		t.Fatalf("events %q, want 3", datas(t, ms))
	}
	// Their positions were committed: a restart reads nothing again.
	closeSource(t, s)
	appendFile(t, fx.path("b.log"), "B2\n")
	s = fx.open()
	equal(t, "after a restart", readOne(t, s, 20*time.Second), []string{"B2"})
}

// rename rotation: the multiline event the rotated file was still collecting
// at the rename began before every line of the new file, so it comes first.
// The new file's events are held until it is emitted (at multiline.timeout
// here; rotate_wait is far away); they came before it.
func TestMultilinePendingEventAtRenameRotationComesBeforeTheNewFile(t *testing.T) {
	fx := newFixture(t, "path = \"app.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"1h\"\n"+
		"[multiline]\nstart_pattern = '^S'\ntimeout = \"300ms\"\n")
	p := fx.path("app.log")
	writeFile(t, p, "S1\n c1\nS2\n c2\n")
	s := fx.open()
	equal(t, "before the rotation", readOne(t, s, 20*time.Second), []string{"S1\n c1"})
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "S3\n c3\nS4\n")
	ms := readMsgs(t, s, 2, 20*time.Second)
	equal(t, "events", datas(t, ms), []string{"S2\n c2", "S3\n c3"})
	if ms[0].Pos.Partition != 0 || ms[1].Pos.Partition != 1 {
		t.Fatalf("positions %+v, %+v; want generation 0, then generation 1", ms[0].Pos, ms[1].Pos)
	}
	closeSource(t, s)
}
