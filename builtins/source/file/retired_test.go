package file

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// step runs one round of what Read does while waiting, without waiting:
// it hands out (and acks) at most one batch, then polls. Tests drive the
// source with it so that what they count depends on rounds, not on time.
func step(t *testing.T, s *Source) []string {
	t.Helper()
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.applyRewinds()
	now := time.Now()
	b, ok, err := s.tryRead(now)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got []string
	if ok {
		checkBatch(t, b)
		b.Ack(nil)
		got = datas(t, b.Messages)
	}
	s.poll(now)
	return got
}

// stepUntil steps until cond holds, at most 50 rounds (a file needs a few:
// noticed, read, finished, retired), and returns the lines read meanwhile.
func stepUntil(t *testing.T, s *Source, what string, cond func() bool) []string {
	t.Helper()
	var got []string
	for range 50 {
		got = append(got, step(t, s)...)
		if cond() {
			return got
		}
	}
	t.Fatalf("%s: not after 50 rounds (read %q)", what, got)
	return nil
}

func checkpointStreams(t *testing.T, s *Source) int {
	t.Helper()
	s.mu.Lock()
	st := s.snapshotLocked()
	s.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 4096 {
		t.Fatalf("checkpoint of %d bytes: %s", len(b), b)
	}
	return len(st.Streams)
}

// A glob over hourly files (app-<n>.log, each written, finished, then
// deleted by cleanup) must not remember every file it ever finished: over
// months that is a map entry per hour, forever. What it remembers of a
// finished file only serves to not read it again while it exists.
func TestFinishedGlobFilesAreForgottenOnceDeleted(t *testing.T) {
	fx := newFixture(t, "path = \"app-*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"0s\"\n")
	s := fx.open()
	const n = 100
	most := 0
	for i := range n {
		p := fx.path("app-" + itoa(i) + ".log")
		writeFile(t, p, "line "+itoa(i)+"\n")
		got := stepUntil(t, s, "new file read", func() bool {
			return s.byPath[p] != nil && s.byPath[p].active != nil && s.byPath[p].active.rd.readEnd() > 0
		})
		equal(t, p, got, []string{"line " + itoa(i)})
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		stepUntil(t, s, "deleted file forgotten", func() bool { return s.byPath[p] == nil })
		// The source closed the file: take the inode it freed, as the many
		// other files of a real disk do (a new app-*.log reusing it would
		// end the old entry by chance).
		writeFile(t, fx.path("other-"+itoa(i)+".txt"), "x")
		most = max(most, len(s.retired))
		if k := checkpointStreams(t, s); k != 0 {
			t.Fatalf("after file %d: %d streams in the checkpoint, want 0", i, k)
		}
	}
	if most > 1 {
		t.Fatalf("the source remembered up to %d finished files after %d were deleted; want at most 1", most, n)
	}
}

// The same with one path and rename rotation (logrotate's create: app.log
// becomes app.log.1, which replaces the previous app.log.1): nothing
// needs the finished files of a single path, yet each rotation was kept.
func TestRotatedFilesOfOnePathAreNotRemembered(t *testing.T) {
	fx := newFixture(t, "path = \"app.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"0s\"\n")
	p := fx.path("app.log")
	writeFile(t, p, "line 0\n")
	s := fx.open()
	st := s.byPath[p]
	equal(t, "first file", stepUntil(t, s, "first file read", func() bool { return st.active != nil && st.active.rd.readEnd() > 0 }), []string{"line 0"})
	const n = 100
	most := 0
	for i := 1; i <= n; i++ {
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
		// Take the inode the replaced app.log.1 freed (see above).
		writeFile(t, fx.path("other-"+itoa(i)+".txt"), "x")
		writeFile(t, p, "line "+itoa(i)+"\n")
		got := stepUntil(t, s, "rotated file finished and new file read", func() bool {
			return len(st.segs) == 1 && st.active != nil && st.active.gen == int32(i) && st.active.rd.readEnd() > 0
		})
		equal(t, "generation "+itoa(i), got, []string{"line " + itoa(i)})
		most = max(most, len(s.retired))
		if k := checkpointStreams(t, s); k != 1 {
			t.Fatalf("after rotation %d: %d streams in the checkpoint, want 1", i, k)
		}
	}
	if most > 1 {
		t.Fatalf("the source remembered up to %d finished files after %d rotations; want at most 1", most, n)
	}
}

// Forgetting must never read a finished file again while it exists: one
// renamed to a name outside the glob (where a poll does not see it) and
// later back to a matching name stays finished.
func TestFinishedFileRenamedOutOfTheGlobAndBackIsNotReadAgain(t *testing.T) {
	fx := newFixture(t, "path = \"*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"0s\"\n")
	a := fx.path("a.log")
	writeFile(t, a, "a1\n")
	s := fx.open()
	id := statID(t, a)
	equal(t, "a.log", stepUntil(t, s, "a.log read", func() bool { return s.byPath[a] != nil && s.byPath[a].active.rd.readEnd() > 0 }), []string{"a1"})
	if err := os.Rename(a, fx.path("a.log.old")); err != nil {
		t.Fatal(err)
	}
	stepUntil(t, s, "renamed file finished", func() bool { _, ok := s.retired[id]; return ok && s.byPath[a] == nil })
	for range 20 {
		if got := step(t, s); got != nil {
			t.Fatalf("read %q from a finished file", got)
		}
	}
	if err := os.Rename(fx.path("a.log.old"), fx.path("b.log")); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if got := step(t, s); got != nil {
			t.Fatalf("read %q from a finished file renamed back into the glob", got)
		}
	}
	if s.byPath[fx.path("b.log")] != nil {
		t.Fatal("the finished file became a stream of its own")
	}
}
