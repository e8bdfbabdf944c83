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
