package file

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// readUntil reads and acks batches until n messages arrived, checking after
// each Read that the source keeps at most max files open.
func readUntil(t *testing.T, s *Source, n, maxOpen int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d: %v", len(got), n, err)
		}
		checkBatch(t, b)
		got = append(got, datas(t, b.Messages)...)
		b.Ack(nil)
		if open := s.openFiles(); open > maxOpen {
			t.Fatalf("%d files open, max_open_files is %d", open, maxOpen)
		}
	}
	sort.Strings(got)
	return got
}

// openFiles counts the segments holding a file, checking the source's own
// count.
func (s *Source) openFiles() int {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	n := 0
	for _, st := range s.streams {
		for _, sg := range st.segs {
			if sg.f != nil {
				n++
			}
		}
	}
	if n != s.open {
		panic(fmt.Sprintf("source counts %d open files, %d are", s.open, n))
	}
	return n
}

// TestMaxOpenFilesTail: with max_open_files = 2 and eight files, every line
// is read, lines appended to closed (parked) files are read, and a parked
// file rotated away is read to its end under its new name while the new
// file at its path is read from its start.
func TestMaxOpenFilesTail(t *testing.T) {
	fx := newFixture(t, "path = \"logs/*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"50ms\"\nmax_open_files = 2\n")
	os.Mkdir(fx.path("logs"), 0o755)
	var all []string
	for f := range 8 {
		writeFile(t, fx.path(fmt.Sprintf("logs/f%d.log", f)), lines(fmt.Sprintf("f%d-", f), 0, 3))
		all = append(all, want(fmt.Sprintf("f%d-", f), 0, 3)...)
	}
	s := fx.open()
	sort.Strings(all)
	equal(t, "first lines", readUntil(t, s, len(all), 2), all)

	var more []string
	for f := range 8 {
		appendFile(t, fx.path(fmt.Sprintf("logs/f%d.log", f)), lines(fmt.Sprintf("f%d-", f), 3, 5))
		more = append(more, want(fmt.Sprintf("f%d-", f), 3, 5)...)
	}
	sort.Strings(more)
	equal(t, "appended lines", readUntil(t, s, len(more), 2), more)

	// Rotate a file whose descriptor is closed: it gets one more line
	// first, is renamed, and a new file starts at its path.
	parked := -1
	s.readMu.Lock()
	for f := range 8 {
		if st := s.byPath[fx.path(fmt.Sprintf("logs/f%d.log", f))]; st != nil && st.active != nil && st.active.parked {
			parked = f
			break
		}
	}
	s.readMu.Unlock()
	if parked < 0 {
		t.Fatal("no file is parked with max_open_files = 2 and 8 files")
	}
	p := fx.path(fmt.Sprintf("logs/f%d.log", parked))
	appendFile(t, p, lines(fmt.Sprintf("f%d-", parked), 5, 6))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, lines(fmt.Sprintf("g%d-", parked), 0, 2))
	rot := append(want(fmt.Sprintf("f%d-", parked), 5, 6), want(fmt.Sprintf("g%d-", parked), 0, 2)...)
	sort.Strings(rot)
	equal(t, "rotated and new file", readUntil(t, s, len(rot), 2), rot)
}

// TestMaxOpenFilesRead: in read mode, files are opened in turn, at most
// max_open_files at once, and every line of every file is read once.
func TestMaxOpenFilesRead(t *testing.T) {
	fx := newFixture(t, "path = \"logs/*.log\"\nmax_open_files = 3\nbatch = { max_events = 2 }\n")
	os.Mkdir(fx.path("logs"), 0o755)
	var all []string
	for f := range 20 {
		writeFile(t, fx.path(fmt.Sprintf("logs/f%02d.log", f)), lines(fmt.Sprintf("f%02d-", f), 0, 5))
		all = append(all, want(fmt.Sprintf("f%02d-", f), 0, 5)...)
	}
	s := fx.open()
	var got []string
	for {
		b, err := s.Read(context.Background())
		if err != nil {
			break
		}
		got = append(got, datas(t, b.Messages)...)
		b.Ack(nil)
		if open := s.openFiles(); open > 3 {
			t.Fatalf("%d files open, max_open_files is 3", open)
		}
	}
	sort.Strings(got)
	sort.Strings(all)
	equal(t, "lines", got, all)
}
