package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
)

// dlqIndex remembers, per dead-letter file and task, where the task's
// records start, so that a page of the browser reads only what the file
// gained since the last request and then the records of the page, not the
// whole file. A file that shrank or was replaced (rotated) is indexed
// again from its start.
type dlqIndex struct {
	mu    sync.Mutex
	files map[string]*fileIndex // by path + "\x00" + task
}

type fileIndex struct {
	mu  sync.Mutex
	fi  os.FileInfo // the file indexed, for os.SameFile
	end int64       // end of the last complete line indexed
	ids []int64     // offsets of the task's records, ascending
}

// records returns the offsets of task's records in path, oldest first
// (ascending). The slice is the caller's to read: later appends never
// touch it.
func (x *dlqIndex) records(path, task string) ([]int64, error) {
	x.mu.Lock()
	if x.files == nil {
		x.files = map[string]*fileIndex{}
	}
	key := path + "\x00" + task
	ix := x.files[key]
	if ix == nil {
		ix = &fileIndex{}
		x.files[key] = ix
	}
	x.mu.Unlock()

	ix.mu.Lock()
	defer ix.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if ix.fi == nil || !os.SameFile(ix.fi, fi) || fi.Size() < ix.end {
		ix.end, ix.ids = 0, nil
	}
	ix.fi = fi
	end, err := scanFrom(f, ix.end, func(id int64, line []byte) {
		var who struct {
			Task string `json:"task"`
		}
		if json.Unmarshal(line, &who) == nil && who.Task != "" && who.Task != task {
			return // a dead-letter file several tasks share
		}
		ix.ids = append(ix.ids, id)
	})
	ix.end = end
	if err != nil {
		return nil, err
	}
	return ix.ids[:len(ix.ids):len(ix.ids)], nil
}

// scanFrom calls fn with each complete non-blank line of f from offset
// start on, with the line's offset. It returns the end of the last complete
// line: a record being written (no newline yet) is left for later.
func scanFrom(f *os.File, start int64, fn func(id int64, line []byte)) (int64, error) {
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return start, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	off := start
	for {
		line, err := readLine(br)
		if err == io.EOF && !strings.HasSuffix(string(line), "\n") {
			return off, nil
		}
		if err != nil && err != io.EOF {
			return off, err
		}
		if l := strings.TrimSpace(string(line)); l != "" {
			fn(off, []byte(l))
		}
		off += int64(len(line))
		if err == io.EOF {
			return off, nil
		}
	}
}

// readRecord reads the line starting at offset id.
func readRecord(f *os.File, id int64) ([]byte, error) {
	if _, err := f.Seek(id, io.SeekStart); err != nil {
		return nil, err
	}
	line, err := readLine(bufio.NewReaderSize(f, 64<<10))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return []byte(strings.TrimSpace(string(line))), nil
}
