package lineformat

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestLineReader reads lines shorter and longer than the reader's buffer
// and than the limit, with and without a last '\n', and checks each line,
// its full size and the bytes it took.
func TestLineReader(t *testing.T) {
	long, huge := strings.Repeat("l", 100), strings.Repeat("h", 1000)
	in := "a\r\n\n" + long + "\n" + huge + "\nlast"
	lr := LineReader{R: bufio.NewReaderSize(strings.NewReader(in), 16), Limit: 300}
	want := []struct {
		line    string
		size, n int64
		eof     bool
	}{
		{"a\r", 2, 3, false},
		{"", 0, 1, false},
		{long, 100, 101, false},
		{huge[:300], 1000, 1001, false}, // cut at the limit
		{"last", 4, 4, true},
	}
	for i, w := range want {
		line, size, n, err := lr.Next()
		if string(line) != w.line || size != w.size || n != w.n || errors.Is(err, io.EOF) != w.eof || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("line %d: %q (%d bytes) size %d n %d err %v; want %d bytes, size %d, n %d, eof %v", i, line[:min(len(line), 10)], len(line), size, n, err, len(w.line), w.size, w.n, w.eof)
		}
	}
	if line, size, n, err := lr.Next(); len(line) != 0 || size != 0 || n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %q %d %d %v", line, size, n, err)
	}
}

// TestLineReaderMemory: a 64 MiB line without a '\n' under a 1 MiB limit
// allocates about the limit, not the line.
func TestLineReaderMemory(t *testing.T) {
	in := strings.NewReader(strings.Repeat("x", 64<<20))
	lr := LineReader{R: bufio.NewReaderSize(in, 64<<10), Limit: 1 << 20}
	var line []byte
	var size int64
	allocs := testing.AllocsPerRun(1, func() {
		in.Seek(0, io.SeekStart)
		lr.R.Reset(in)
		lr.long = nil
		line, size, _, _ = lr.Next()
	})
	if len(line) != 1<<20 || size != 64<<20 {
		t.Fatalf("%d bytes kept of a line of %d", len(line), size)
	}
	if allocs > 8 {
		t.Fatalf("%v allocations for one cut line: the buffer should double up to the limit", allocs)
	}
}
