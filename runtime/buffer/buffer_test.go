package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// testMsg is record number i of a test: its payload names i, so order and
// content can be checked after any round trip.
func testMsg(i int) message.Message {
	return message.Message{
		Payload: []byte(`{"n":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", i%50) + `"}`),
		Event:   []byte(`{"specversion":"1.0","id":"e-` + strconv.Itoa(i) + `"}`),
		Key:     []byte("k" + strconv.Itoa(i%7)),
		Headers: []message.Header{{Key: "h", Value: []byte(strconv.Itoa(i))}},
		Time:    time.Unix(1_700_000_000+int64(i), int64(i)).UTC(),
		Pos:     message.Position{Stream: "orders", Partition: int32(i % 3), Offset: int64(i)},
	}
}

func testMsgs(from, n int) []message.Message {
	out := make([]message.Message, n)
	for i := range out {
		out[i] = testMsg(from + i)
	}
	return out
}

// payloadN returns the number a testMsg payload names.
func payloadN(t testing.TB, m message.Message) int {
	t.Helper()
	s, ok := strings.CutPrefix(string(m.Payload), `{"n":`)
	if !ok {
		t.Fatalf("payload %q is not a test payload", m.Payload)
	}
	n, err := strconv.Atoi(s[:strings.IndexByte(s, ',')])
	if err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	return n
}

// sameMsg reports how got differs from want, or "".
func sameMsg(got, want message.Message) string {
	switch {
	case !bytes.Equal(got.Payload, want.Payload) || (got.Payload == nil) != (want.Payload == nil):
		return fmt.Sprintf("payload %q, want %q", got.Payload, want.Payload)
	case !bytes.Equal(got.Event, want.Event) || (got.Event == nil) != (want.Event == nil):
		return fmt.Sprintf("event %q, want %q", got.Event, want.Event)
	case !bytes.Equal(got.Key, want.Key) || (got.Key == nil) != (want.Key == nil):
		return fmt.Sprintf("key %q (nil %v), want %q (nil %v)", got.Key, got.Key == nil, want.Key, want.Key == nil)
	case !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC:
		return fmt.Sprintf("time %v, want %v in UTC", got.Time, want.Time)
	case got.Pos != want.Pos:
		return fmt.Sprintf("position %+v, want %+v", got.Pos, want.Pos)
	case len(got.Headers) != len(want.Headers):
		return fmt.Sprintf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range got.Headers {
		g, w := got.Headers[i], want.Headers[i]
		if g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
			return fmt.Sprintf("header %d = %q:%q, want %q:%q", i, g.Key, g.Value, w.Key, w.Value)
		}
	}
	return ""
}

func openT(t testing.TB, o Options) *Buffer {
	t.Helper()
	o.Logger = zerolog.New(zerolog.NewTestWriter(t))
	// A child process forked by a parallel test (TestKill9) holds a copy of
	// every descriptor, the lock file's too, until it execs: a buffer just
	// closed here can look locked for that moment. Only the tests fork.
	var b *Buffer
	var err error
	testkit.Eventually(testkit.DefaultWait, func() bool {
		b, err = Open(o)
		return !errors.Is(err, ErrLocked)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func appendT(t testing.TB, b *Buffer, msgs []message.Message) {
	t.Helper()
	if err := b.Append(context.Background(), msgs, nil); err != nil {
		t.Fatal(err)
	}
}

// readN reads exactly n records (failing if they do not come within a
// generous deadline), committing each batch when commit is set.
func readN(t testing.TB, b *Buffer, n, max int, commit bool) []message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []message.Message
	for len(out) < n {
		batch, err := b.Read(ctx, min(max, n-len(out)))
		if err != nil {
			t.Fatalf("read after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, batch.Msgs...)
		if commit {
			if err := b.Commit(batch.Cursor); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// expectEmpty checks that no record is waiting.
func expectEmpty(t testing.TB, b *Buffer) {
	t.Helper()
	if s := b.Stats(); s.Unread != 0 {
		t.Fatalf("%d records unread, want none", s.Unread)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if batch, err := b.Read(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on an empty buffer = %d records, %v; want a deadline error", len(batch.Msgs), err)
	}
}

func checkSeq(t testing.TB, got []message.Message, from int) {
	t.Helper()
	for i, m := range got {
		if d := sameMsg(m, testMsg(from+i)); d != "" {
			t.Fatalf("record %d (want number %d): %s", i, from+i, d)
		}
	}
}

// dirBytes sums the sizes of the segment files in dir.
func dirBytes(t testing.TB, dir string) (int64, int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	n := 0
	for _, e := range ents {
		if _, ok := parseSegName(e.Name()); !ok {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted by a concurrent Commit
		}
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		n++
	}
	return total, n
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := openT(t, Options{Dir: t.TempDir()})
	odd := []message.Message{
		{}, // every field zero: nil slices, zero time, empty stream
		{Payload: []byte{}, Event: []byte{}, Key: []byte{}, Headers: []message.Header{{Key: "", Value: nil}, {Key: "a", Value: []byte{}}, {Key: "a", Value: []byte("dup")}}},
		{Payload: []byte("not json\n\x00\xff"), Time: time.Date(1500, 1, 2, 3, 4, 5, 999_999_999, time.UTC), Pos: message.Position{Stream: "s", Partition: -1, Offset: -5}},
		{Payload: bytes.Repeat([]byte("p"), 100_000), Time: time.Date(3000, 1, 1, 0, 0, 0, 1, time.FixedZone("X", 3600))},
		{Payload: []byte(`{"same":1}`), Event: []byte(`{"same":1}`)}, // stored once
		{Event: []byte("event only")},
	}
	tags := []Tag{{Group: 0, Last: true}, {Group: 7}, {Group: 7, Last: true}, {Group: 1<<32 - 1, Last: true}, {}, {Last: true}}
	if err := b.Append(context.Background(), odd, tags); err != nil {
		t.Fatal(err)
	}
	appendT(t, b, testMsgs(0, 250))
	n := len(odd) + 250
	if s := b.Stats(); s.Records != uint64(n) || s.Unread != uint64(n) || s.Segments != 1 {
		t.Fatalf("stats %+v, want %d records in one segment", s, n)
	}

	batch, err := b.Read(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Msgs) != 3 || !slices.Equal(batch.Tags, tags[:3]) {
		t.Fatalf("first batch: %d records, tags %v; want 3 records, tags %v", len(batch.Msgs), batch.Tags, tags[:3])
	}
	rest := readN(t, b, n-3, 100, false)
	all := append(batch.Msgs, rest...)
	for i, want := range odd {
		if d := sameMsg(all[i], want); d != "" {
			t.Errorf("odd record %d: %s", i, d)
		}
	}
	checkSeq(t, all[len(odd):], 0)

	// Appending a header to a read record must not clobber the next one.
	all[len(odd)].Headers = append(all[len(odd)].Headers, message.Header{Key: "new"})
	if d := sameMsg(all[len(odd)+1], testMsg(1)); d != "" {
		t.Fatalf("after appending a header to the previous record: %s", d)
	}
	if s := b.Stats(); s.Unread != 0 || s.Records != uint64(n) {
		t.Fatalf("stats %+v, want %d uncommitted and none unread", s, n)
	}
	expectEmpty(t, b)
}

func TestCommitAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := Options{Dir: dir, MaxSize: 1 << 20, SegmentSize: 16 << 10}
	b := openT(t, o)
	for i := 0; i < 500; i += 20 {
		appendT(t, b, testMsgs(i, 20))
	}
	if s := b.Stats(); s.Segments < 5 {
		t.Fatalf("stats %+v, want several segments", s)
	}
	checkSeq(t, readN(t, b, 300, 64, true), 0)   // committed
	checkSeq(t, readN(t, b, 50, 64, false), 300) // read, not committed
	segsBefore := b.Stats().Segments
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(context.Background(), testMsgs(0, 1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	b = openT(t, o)
	r := b.Recovery()
	if r.Records != 200 || r.TruncatedBytes != 0 || len(r.Notes) != 0 || r.Removed != 0 {
		t.Fatalf("recovery %+v, want 200 records and no repair", r)
	}
	if s := b.Stats(); s.Segments != segsBefore || s.Records != 200 {
		t.Fatalf("stats after reopen %+v, want %d segments and 200 records", s, segsBefore)
	}
	// Resumes at the committed cursor: the 50 read but uncommitted come again.
	checkSeq(t, readN(t, b, 200, 64, true), 300)
	appendT(t, b, testMsgs(500, 10))
	checkSeq(t, readN(t, b, 10, 64, true), 500)
	expectEmpty(t, b)
	// Everything delivered: only the last segment is left.
	if s := b.Stats(); s.Segments != 1 || s.Records != 0 {
		t.Fatalf("stats %+v, want 1 segment and no record", s)
	}
	if n, segs := dirBytes(t, dir); segs != 1 || n != b.Stats().Bytes {
		t.Fatalf("%d segment files of %d bytes on disk, stats say %+v", segs, n, b.Stats())
	}
}

func TestCommitOrder(t *testing.T) {
	t.Parallel()
	b := openT(t, Options{Dir: t.TempDir()})
	appendT(t, b, testMsgs(0, 10))
	b1, err := b.Read(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := b.Read(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(b2.Cursor); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(b1.Cursor); err != nil { // older: no-op
		t.Fatal(err)
	}
	if s := b.Stats(); s.Records != 0 {
		t.Fatalf("stats %+v, want nothing left after committing the newer cursor", s)
	}
	other := openT(t, Options{Dir: t.TempDir()})
	appendT(t, other, testMsgs(0, 50))
	far, err := other.Read(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(far.Cursor); err == nil || !strings.Contains(err.Error(), "past the records read") {
		t.Fatalf("committing a cursor from another buffer: %v, want an error", err)
	}
}

func TestOptionsAndMisuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no dir", Options{}, "no directory"},
		{"tiny max", Options{MaxSize: 100}, "below the minimum"},
		{"segment over half", Options{MaxSize: 1 << 20, SegmentSize: 600 << 10}, "half the max size"},
		{"segment tiny", Options{SegmentSize: 10}, "between"},
		{"policy", Options{WhenFull: "drop_newest"}, `unknown when_full policy "drop_newest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no dir" {
				tc.o.Dir = t.TempDir()
			}
			_, err := Open(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, tc.want)
			}
		})
	}

	dir := t.TempDir()
	b := openT(t, Options{Dir: dir, MaxSize: 64 << 10})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of one directory: %v, want ErrLocked", err)
	}
	big := message.Message{Payload: make([]byte, 70<<10)}
	if err := b.Append(context.Background(), []message.Message{big}, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a batch over max_size: %v, want ErrTooLarge", err)
	}
	if err := b.Append(context.Background(), testMsgs(0, 2), []Tag{{}}); err == nil {
		t.Fatal("Append with one tag for two messages succeeded")
	}
	if _, err := b.Read(context.Background(), 0); err == nil {
		t.Fatal("Read with max 0 succeeded")
	}

	// A Read waiting for data returns ErrClosed when the buffer closes.
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(context.Background(), 10)
		done <- err
	}()
	testkit.WaitBlocked(t, "(*Buffer).Read")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Read after Close: %v, want ErrClosed", err)
	}
	// The lock is released by Close.
	b2 := openT(t, Options{Dir: dir, MaxSize: 64 << 10})
	if r := b2.Recovery(); r.Records != 0 || len(r.Notes) != 0 {
		t.Fatalf("recovery of an empty buffer: %+v", r)
	}
}

func TestConcurrentAppenders(t *testing.T) {
	t.Parallel()
	const writers, batches, per = 8, 60, 25
	b := openT(t, Options{Dir: t.TempDir(), MaxSize: 256 << 10, SegmentSize: 32 << 10})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range batches {
				msgs := make([]message.Message, per)
				tags := make([]Tag, per)
				for i := range msgs {
					msgs[i] = message.Message{Payload: fmt.Appendf(nil, "%d/%d/%d", w, k, i), Pos: message.Position{Stream: "w" + strconv.Itoa(w)}}
					tags[i] = Tag{Group: uint32(w), Last: i == per-1}
				}
				if err := b.Append(context.Background(), msgs, tags); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	got := readN(t, b, writers*batches*per, 40, true) // also frees space for blocked writers
	wg.Wait()
	next := make([]int, writers) // next batch expected per writer
	for i := 0; i < len(got); i += per {
		var w, k, j int
		if _, err := fmt.Sscanf(string(got[i].Payload), "%d/%d/%d", &w, &k, &j); err != nil || j != 0 {
			t.Fatalf("record %d = %q, want the first record of a batch", i, got[i].Payload)
		}
		if k != next[w] {
			t.Fatalf("writer %d: batch %d came when %d was expected", w, k, next[w])
		}
		next[w]++
		for j := range per {
			if want := fmt.Sprintf("%d/%d/%d", w, k, j); string(got[i+j].Payload) != want {
				t.Fatalf("record %d = %q, want %q (batches must stay contiguous)", i+j, got[i+j].Payload, want)
			}
		}
	}
	if s := b.Stats(); s.Records != 0 || s.Dropped != 0 || s.Lost != 0 {
		t.Fatalf("stats %+v after draining everything", s)
	}
}
