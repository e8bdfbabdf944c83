package stdin

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
)

func readAll(t *testing.T, s *Source) []component.Batch {
	t.Helper()
	var out []component.Batch
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestLinesOffsetsAndErrors(t *testing.T) {
	long := strings.Repeat("x", 300<<10)                          // longer than the reader's buffer
	in := "{\"a\":1}\r\n\n   \nnot json\n" + long + "\n{\"b\":2}" // last line without newline
	cfg := &Config{Format: "json", BatchSize: 2, Source: "src", Type: "typ"}
	s := New(io.NopCloser(strings.NewReader(in)), cfg, component.Env{MaxEvent: 100 << 10})
	var got []string
	var offs []int64
	var errs []string
	for _, b := range readAll(t, s) {
		if len(b.Messages) > 2 || b.Lane != "stdin" {
			t.Fatalf("batch of %d on lane %q", len(b.Messages), b.Lane)
		}
		for _, m := range b.Messages {
			offs = append(offs, m.Pos.Offset)
			if m.Err != nil {
				errs = append(errs, m.Err.Error())
				continue
			}
			got = append(got, string(m.Payload))
		}
		b.Ack(nil)
	}
	if len(got) != 2 || !strings.Contains(got[0], `"id":"stdin-0-0"`) || !strings.Contains(got[0], `"data":{"a":1}`) || !strings.Contains(got[1], `"data":{"b":2}`) {
		t.Fatalf("events %q", got)
	}
	wantOffs := []int64{0, 14, 23, 23 + int64(len(long)) + 1}
	if len(offs) != 4 || offs[0] != wantOffs[0] || offs[1] != wantOffs[1] || offs[2] != wantOffs[2] || offs[3] != wantOffs[3] {
		t.Fatalf("offsets %v, want %v", offs, wantOffs)
	}
	if len(errs) != 2 || !strings.Contains(errs[0], "stdin line 4") {
		t.Fatalf("errors %q", errs)
	}
	if !strings.Contains(errs[1], "too large") {
		t.Fatalf("over-size line not reported: %q", errs[1])
	}
}

func TestHugeLineIsBounded(t *testing.T) {
	huge := strings.Repeat("y", 9<<20)
	s := New(io.NopCloser(strings.NewReader(huge+"\n{\"ok\":1}\n")), &Config{Format: "auto", BatchSize: 10}, component.Env{MaxEvent: 1 << 20})
	bs := readAll(t, s)
	var ms []int
	var errs []error
	for _, b := range bs {
		for _, m := range b.Messages {
			ms = append(ms, len(m.Payload))
			if m.Err != nil && !errors.Is(m.Err, lineformat.ErrTooLarge) {
				t.Fatal(m.Err)
			}
			errs = append(errs, m.Err)
		}
	}
	// The runaway line is kept up to 4 x max_event_size for its dead letter,
	// whose reason gives the line's real size and says it was cut.
	if len(ms) != 2 || ms[0] != 4<<20 {
		t.Fatalf("payload sizes %v", ms)
	}
	if want := "stdin line 1: event too large: 9437184 bytes, the limit is 1048576 (raise max_event_size); the record holds its first 4194304 bytes"; errs[0] == nil || errs[0].Error() != want {
		t.Fatalf("error %v\nwant  %s", errs[0], want)
	}
	if bs[len(bs)-1].Messages[len(bs[len(bs)-1].Messages)-1].Pos.Offset != int64(len(huge)+1) {
		t.Fatal("offset after a cut line is wrong")
	}
}

func TestIdsAreDeterministic(t *testing.T) {
	in := "{\"n\":1}\n{\"n\":2}\n"
	read := func() []string {
		s := New(io.NopCloser(strings.NewReader(in)), &Config{Format: "auto", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
		var ids []string
		for _, b := range readAll(t, s) {
			for _, m := range b.Messages {
				ids = append(ids, m.Pos.String())
			}
		}
		return ids
	}
	a, b := read(), read()
	if strings.Join(a, ",") != "stdin-0-0,stdin-0-8" || strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("%v %v", a, b)
	}
}

// TestBatchBytesAreBounded: a batch ends once its lines hold 4 MiB, so
// batch_size over-long lines (each kept up to 4 x max_event_size) cannot
// hold gigabytes at once.
func TestBatchBytesAreBounded(t *testing.T) {
	line := strings.Repeat("z", 3<<20) + "\n"
	s := New(io.NopCloser(strings.NewReader(strings.Repeat(line, 6))), &Config{Format: "auto", BatchSize: 512}, component.Env{MaxEvent: 1 << 20})
	n := 0
	for _, b := range readAll(t, s) {
		held := 0
		for _, m := range b.Messages {
			held += len(m.Payload)
			if !errors.Is(m.Err, lineformat.ErrTooLarge) {
				t.Fatalf("a 3 MiB line with a 1 MiB limit: %v", m.Err)
			}
			n++
		}
		if len(b.Messages) > 2 {
			t.Fatalf("a batch of %d lines holding %d bytes, want at most the 2 that pass 4 MiB", len(b.Messages), held)
		}
	}
	if n != 6 {
		t.Fatalf("%d lines read, want 6", n)
	}
}

// TestDecodeLineKeepsInvalidUTF8Policy: `sluice test` decodes a line as the
// running source does, invalid_utf8 = "reject" included.
func TestDecodeLineKeepsInvalidUTF8Policy(t *testing.T) {
	s := New(io.NopCloser(strings.NewReader("")), &Config{Format: "text", InvalidUTF8: "reject", BatchSize: 1}, component.Env{MaxEvent: 1 << 20})
	if _, err := s.DecodeLine(nil, []byte("caf\xe9"), 1, 0, time.Unix(0, 0)); err == nil {
		t.Fatal("a line that is not UTF-8 decoded under invalid_utf8 = \"reject\"")
	}
}
