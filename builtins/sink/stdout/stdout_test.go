package stdout

import (
	"bytes"
	"context"
	"errors"
	"sync"
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
