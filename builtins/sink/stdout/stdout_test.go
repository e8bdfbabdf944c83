package stdout

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	s := New(&buf)
	msgs := []message.Message{{Payload: []byte(`{ "a" : 1 }`)}, {Payload: []byte("two\nlines")}, {Payload: []byte("plain")}}
	err := s.Write(context.Background(), msgs)
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
		t.Fatalf("err %v", err)
	}
	if buf.String() != "{\"a\":1}\nplain\n" {
		t.Fatalf("wrote %q", buf.String())
	}
}

func TestConcurrentWritesKeepLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	s := New(&buf)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				s.Write(context.Background(), []message.Message{{Payload: bytes.Repeat([]byte{'a' + byte(w)}, 1000)}})
			}
		}()
	}
	wg.Wait()
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(l) != 1000 || bytes.Count(l, l[:1]) != 1000 {
			t.Fatalf("torn line of %d bytes", len(l))
		}
	}
}

// fullOnce is an output that fails once (a full disk under
// `sluice run > out.jsonl`) after taking the first keep bytes of that
// write, then works.
type fullOnce struct {
	keep   int
	failed bool
	out    bytes.Buffer
}

func (f *fullOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		n := min(f.keep, len(p))
		f.out.Write(p[:n])
		return n, syscall.ENOSPC
	}
	return f.out.Write(p)
}

// A bufio.Writer keeps its first error: the sink must not, or every retry
// after one transient failure fails too.
func TestWriteSucceedsAfterTransientError(t *testing.T) {
	f := &fullOnce{}
	s := New(f)
	msgs := []message.Message{{Payload: []byte(`{"n":1}`)}}
	err := s.Write(context.Background(), msgs)
	if err == nil || component.ClassOf(err) != component.ClassRetryable || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("first Write: %v, want a retryable ENOSPC", err)
	}
	if err := s.Write(context.Background(), msgs); err != nil {
		t.Fatalf("retry after the output recovered: %v", err)
	}
	if got := f.out.String(); got != "{\"n\":1}\n" {
		t.Fatalf("wrote %q", got)
	}
}

// What the failed write left in the buffer is dropped, not written ahead of
// the retry; the line the failure cut is ended, so the retried lines are
// whole and each is written once after it.
func TestFailedWriteLeavesNothingBuffered(t *testing.T) {
	f := &fullOnce{keep: 10}
	s := New(f)
	var msgs []message.Message
	var want bytes.Buffer
	for i := range 100 { // 100 lines of 4 KiB: more than the 256 KiB buffer
		line := bytes.Repeat([]byte{'a' + byte(i%26)}, 4096)
		msgs = append(msgs, message.Message{Payload: line})
		want.Write(line)
		want.WriteByte('\n')
	}
	if err := s.Write(context.Background(), msgs); err == nil {
		t.Fatal("first Write succeeded")
	}
	if err := s.Write(context.Background(), msgs); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := f.out.Bytes()
	frag := bytes.Repeat([]byte{'a'}, 10)
	if !bytes.HasPrefix(got, append(frag, '\n')) {
		t.Fatalf("output starts %q, want the 10-byte fragment ended by a newline", got[:min(len(got), 20)])
	}
	if rest := got[len(frag)+1:]; !bytes.Equal(rest, want.Bytes()) {
		t.Fatalf("after the fragment: %d bytes, want the batch once (%d bytes)", len(rest), want.Len())
	}
}
