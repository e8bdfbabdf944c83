package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// frameOffsets lists the offset of every valid frame of a segment file,
// plus its size at the end.
func frameOffsets(t testing.TB, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sr := segReader{f: f, off: headerSize, limit: fi.Size()}
	sc := scanner{br: newBufReader(&sr), off: headerSize, limit: fi.Size()}
	var offs []int64
	for {
		offs = append(offs, sc.off)
		n, err := sc.head()
		if err != nil {
			break
		}
		if err := sc.body(make([]byte, n)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return offs
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedTail covers what a crash (or worse) can leave at the end of
// the last segment: Open cuts it, reports it, keeps every complete Append
// before it, and the buffer works on.
func TestDamagedTail(t *testing.T) {
	t.Parallel()
	// Three appends of 10 records: numbers 0-9, 10-19, 20-29. frames[i] is
	// the offset of record i, frames[30] the end of the file.
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, path string, frames []int64)
		at       int // first record the damage touches (30: none)
		keep     int // records kept
		cutWhole uint64
		reason   string
	}{
		{"cut inside the last record", func(t *testing.T, path string, fr []int64) {
			os.Truncate(path, fr[30]-5)
		}, 29, 20, 9, "runs past the end"},
		{"cut inside a frame header", func(t *testing.T, path string, fr []int64) {
			os.Truncate(path, fr[29]+3)
		}, 29, 20, 9, "stray bytes"},
		{"flipped byte in the last record", func(t *testing.T, path string, fr []int64) {
			flipByte(t, path, fr[30]-3)
		}, 29, 20, 9, "checksum mismatch"},
		{"flipped size of the last record", func(t *testing.T, path string, fr []int64) {
			flipByte(t, path, fr[29])
		}, 29, 20, 9, "record"},
		{"garbage after the end", func(t *testing.T, path string, fr []int64) {
			appendFile(t, path, []byte(strings.Repeat("garbage!", 20)))
		}, 30, 30, 0, "record size"},
		{"zeros after the end", func(t *testing.T, path string, fr []int64) {
			appendFile(t, path, make([]byte, 4096))
		}, 30, 30, 0, "below the minimum"},
		{"append without its end marker", func(t *testing.T, path string, fr []int64) {
			os.Truncate(path, fr[24]) // records 20-23 whole, the rest missing
		}, 24, 20, 4, "did not complete"},
		{"flipped byte in the first append", func(t *testing.T, path string, fr []int64) {
			flipByte(t, path, fr[5]+20)
		}, 5, 0, 5, "checksum mismatch"},
		{"torn new segment", func(t *testing.T, path string, fr []int64) {
			next := filepath.Join(filepath.Dir(path), "00000000000000000002.seg")
			if err := os.WriteFile(next, []byte("SLBF\x01"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 30, 30, 0, "incomplete header"},
	} {
		for _, committed := range []int{0, 10} {
			t.Run(fmt.Sprintf("%s/committed %d", tc.name, committed), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				o := Options{Dir: dir}
				b := openT(t, o)
				for i := 0; i < 30; i += 10 {
					appendT(t, b, testMsgs(i, 10))
				}
				if committed > 0 {
					readN(t, b, committed, 100, true)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				path := segFiles(t, dir)[0]
				frames := frameOffsets(t, path)
				if len(frames) != 31 {
					t.Fatalf("%d frames, want 30", len(frames)-1)
				}
				tc.damage(t, path, frames)

				b = openT(t, o)
				r := b.Recovery()
				keep, reason, cut := tc.keep, tc.reason, tc.cutWhole
				if tc.at < committed {
					// Damage before the cursor is not looked at: those
					// records were delivered.
					keep, reason, cut = 30, "", 0
				}
				if r.Records != uint64(keep-committed) {
					t.Errorf("recovery %+v: %d records, want %d", r, r.Records, keep-committed)
				}
				if notes := strings.Join(r.Notes, "; "); reason == "" && notes != "" || !strings.Contains(notes, reason) {
					t.Errorf("recovery notes %q, want one mentioning %q", r.Notes, reason)
				}
				if r.TruncatedRecords != cut {
					t.Errorf("recovery %+v: %d whole records cut, want %d", r, r.TruncatedRecords, cut)
				}
				checkSeq(t, readN(t, b, keep-committed, 100, true), committed)
				expectEmpty(t, b)
				// The buffer works on after the repair, and a clean close
				// leaves nothing to repair.
				appendT(t, b, testMsgs(100, 10))
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				b = openT(t, o)
				if r := b.Recovery(); len(r.Notes) != 0 || r.Records != 10 {
					t.Fatalf("recovery after a clean close: %+v", r)
				}
				checkSeq(t, readN(t, b, 10, 100, true), 100)
			})
		}
	}
}

// segmentsOf builds a buffer with several segments of 5-record appends
// and returns it closed, with the number of records.
func segmentsOf(t *testing.T, dir string, n int) Options {
	t.Helper()
	o := Options{Dir: dir, MaxSize: 64 << 10, SegmentSize: 2 << 10, NoSync: true}
	b := openT(t, o)
	for i := 0; i < n; i += 5 {
		appendT(t, b, testMsgs(i, 5))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return o
}

func firstIndex(t testing.TB, path string) int {
	t.Helper()
	_, h, err := readSegHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(h.firstIndex)
}

// TestCorruptMiddleSegment: a bad record in an older segment is found by
// the reader, which skips the rest of that segment, counts exactly what it
// skipped, and goes on.
func TestCorruptMiddleSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := segmentsOf(t, dir, 100)
	segs := segFiles(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	bad := segs[1]
	from, next := firstIndex(t, bad), firstIndex(t, segs[2])
	frames := frameOffsets(t, bad)
	flipByte(t, bad, frames[2]+12) // the third record of the segment

	b := openT(t, o)
	if r := b.Recovery(); len(r.Notes) != 0 || r.Records != 100 {
		t.Fatalf("recovery %+v: Open reads only the last segment, want no repair", r)
	}
	wantLost := next - (from + 2)
	got := readN(t, b, 100-wantLost, 7, true)
	checkSeq(t, got[:from+2], 0)
	checkSeq(t, got[from+2:], next)
	expectEmpty(t, b)
	if s := b.Stats(); s.Lost != uint64(wantLost) || s.LostGroups != uint64(wantLost) {
		t.Fatalf("stats %+v, want %d lost records and groups", s, wantLost)
	}
	// Delivered segments, the damaged one included, are gone.
	if s := b.Stats(); s.Segments != 1 {
		t.Fatalf("stats %+v, want only the last segment left", s)
	}
}

func TestDamagedSegmentHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := segmentsOf(t, dir, 100)
	segs := segFiles(t, dir)
	from, next := firstIndex(t, segs[1]), firstIndex(t, segs[2])
	flipByte(t, segs[1], 17) // first-record number in the header

	b := openT(t, o)
	if r := b.Recovery(); len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "damaged header") {
		t.Fatalf("recovery %+v, want a note about the damaged header", r)
	}
	got := readN(t, b, 100-(next-from), 100, true)
	checkSeq(t, got[:from], 0)
	checkSeq(t, got[from:], next)
	if s := b.Stats(); s.Lost != uint64(next-from) {
		t.Fatalf("stats %+v, want %d lost", s, next-from)
	}
}

func TestDamagedCursor(t *testing.T) {
	t.Parallel()
	t.Run("both slots", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		o := Options{Dir: dir}
		b := openT(t, o)
		appendT(t, b, testMsgs(0, 50))
		readN(t, b, 20, 100, true)
		b.Close()
		if err := os.WriteFile(filepath.Join(dir, cursorName), []byte(strings.Repeat("?", 128)), 0o644); err != nil {
			t.Fatal(err)
		}
		b = openT(t, o)
		if r := b.Recovery(); len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "cursor file is damaged") || r.Records != 50 {
			t.Fatalf("recovery %+v, want a note and all 50 records to read again", r)
		}
		checkSeq(t, readN(t, b, 50, 100, true), 0)
	})
	t.Run("newest slot torn", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		o := Options{Dir: dir}
		b := openT(t, o)
		appendT(t, b, testMsgs(0, 50))
		readN(t, b, 20, 100, true) // generation 1, slot 1
		readN(t, b, 10, 100, true) // generation 2, slot 0
		b.Close()
		flipByte(t, filepath.Join(dir, cursorName), 30)
		b = openT(t, o)
		if r := b.Recovery(); len(r.Notes) != 0 || r.Records != 30 {
			t.Fatalf("recovery %+v, want the older cursor (30 records to read)", r)
		}
		checkSeq(t, readN(t, b, 30, 100, true), 20)
	})
}

// TestLeftoverSegments: a crash between a Commit and the deletion of the
// segments it delivered leaves them on disk; Open deletes them.
func TestLeftoverSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := segmentsOf(t, dir, 100)
	first := segFiles(t, dir)[0]
	raw, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b := openT(t, o)
	readN(t, b, 60, 100, true)
	b.Close()
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("Commit did not delete the delivered first segment: %v", err)
	}
	if err := os.WriteFile(first, raw, 0o644); err != nil { // as if the deletion had not happened
		t.Fatal(err)
	}
	b = openT(t, o)
	if r := b.Recovery(); r.Removed != 1 || r.Records != 40 {
		t.Fatalf("recovery %+v, want 1 leftover removed and 40 records", r)
	}
	checkSeq(t, readN(t, b, 40, 100, true), 60)
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("leftover segment still there: %v", err)
	}
}

// TestNewerFormat: a segment written in another format version stops Open
// with a clear error instead of being deleted as damage.
func TestNewerFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := segmentsOf(t, dir, 20)
	path := segFiles(t, dir)[0]
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[4] = 2 // version 2
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(o)
	if err == nil || !strings.Contains(err.Error(), "format version 2") {
		t.Fatalf("Open of a version 2 segment: %v, want a format version error", err)
	}
	if _, serr := os.Stat(path); serr != nil {
		t.Fatalf("the segment was touched: %v", serr)
	}
}

// TestCorruptWhileOpen: a record damaged under a running buffer, in the
// segment being written to, is met by the reader, which skips everything
// written up to then (the frames after a bad one cannot be found reliably),
// counts it, and reads later appends normally.
func TestCorruptWhileOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir, NoSync: true})
	appendT(t, b, testMsgs(0, 10))
	appendT(t, b, testMsgs(10, 10))
	path := segFiles(t, dir)[0]
	flipByte(t, path, frameOffsets(t, path)[12]+20) // record 12
	checkSeq(t, readN(t, b, 12, 100, true), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if batch, err := b.Read(ctx, 100); !errors.Is(err, context.DeadlineExceeded) { // meets the damage, skips 12-19
		t.Fatalf("Read over the damaged record: %d records, %v; want none and a deadline error", len(batch.Msgs), err)
	}
	if s := b.Stats(); s.Lost != 8 || s.LostGroups != 8 {
		t.Fatalf("stats %+v, want 8 records lost", s)
	}
	appendT(t, b, testMsgs(20, 5))
	checkSeq(t, readN(t, b, 5, 100, true), 20)
}
