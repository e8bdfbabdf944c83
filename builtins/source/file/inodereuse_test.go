package file

import (
	"context"
	"os"
	"testing"
	"time"
)

// takeInode creates the file dst holding content so that it gets the inode
// id, freed by a deleted file, and reports whether it did. ext4 hands out
// the lowest free inode of the group at once, but a checkpoint save (a
// temporary file renamed over the last one) may hold it for a while: so
// candidates are created (and kept, so they do not free inodes again) until
// one gets it, saving the checkpoint between tries, and that one is renamed
// to dst. Tests skip when the filesystem does not reuse the inode.
func takeInode(t *testing.T, s *Source, fx *fixture, id fileID, dst, content string) bool {
	t.Helper()
	for i := range 200 {
		c := fx.path("cand-" + itoa(i) + ".tmp")
		writeFile(t, c, content)
		if fi, err := os.Stat(c); err == nil && idOf(fi) == id {
			if err := os.Rename(c, dst); err != nil {
				t.Fatal(err)
			}
			return true
		}
		s.mu.Lock()
		s.dirty = true // a save frees the inode a previous save's file held
		s.mu.Unlock()
		if err := s.save(); err != nil {
			t.Fatal(err)
		}
	}
	return false
}

func statID(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return idOf(fi)
}

// A glob's file is renamed away and finished (retired, and remembered as
// it still exists); it is deleted, and a new file matching the glob gets
// the freed inode before a poll forgets the old one: it is a new file, read
// from its beginning (it was taken for the finished one and never read).
func TestGlobNewFileReusingFinishedFilesInodeIsRead(t *testing.T) {
	fx := newFixture(t, "path = \"*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"0s\"\n")
	writeFile(t, fx.path("a.log"), "a1\n")
	s := fx.open()
	equal(t, "a.log", readOne(t, s, 20*time.Second), []string{"a1"})
	oldID := statID(t, fx.path("a.log"))
	if err := os.Rename(fx.path("a.log"), fx.path("a.old")); err != nil {
		t.Fatal(err)
	}
	// Drive polls until the renamed file is finished and closed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := s.retired[oldID]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("renamed file never finished")
		}
		if got := readOne(t, s, 50*time.Millisecond); got != nil {
			t.Fatalf("unexpected batch %q", got)
		}
	}
	// No poll runs from here to the read below: the entry is still there.
	if err := os.Remove(fx.path("a.old")); err != nil {
		t.Fatal(err)
	}
	if !takeInode(t, s, fx, oldID, fx.path("b.log"), "b1\n") {
		t.Skip("the filesystem did not reuse the inode")
	}
	equal(t, "b.log (new file, reused inode)", readOne(t, s, 20*time.Second), []string{"b1"})
}

// A finished file still matching the glob (a rotated name) is not read
// again: the fingerprint check keeps it finished.
func TestGlobFinishedFileStillPresentIsNotReadAgain(t *testing.T) {
	fx := newFixture(t, "path = \"*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"0s\"\n")
	writeFile(t, fx.path("app.log"), "a1\n")
	s := fx.open()
	equal(t, "app.log", readOne(t, s, 20*time.Second), []string{"a1"})
	oldID := statID(t, fx.path("app.log"))
	if err := os.Rename(fx.path("app.log"), fx.path("app.1.log")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fx.path("app.log"), "a2\n")
	equal(t, "app.log, new file", readOne(t, s, 20*time.Second), []string{"a2"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := s.retired[oldID]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated file never finished")
		}
		if got := readOne(t, s, 50*time.Millisecond); got != nil {
			t.Fatalf("unexpected batch %q", got)
		}
	}
	// Many polls: app.1.log (finished) must not become a stream of its own.
	expectQuiet(t, s, 300*time.Millisecond)
	if s.byPath[fx.path("app.1.log")] != nil {
		t.Fatal("the finished file became a stream of its own")
	}
}

// A file closed under max_open_files (parked) is deleted, and a new file
// that gets its inode is created at its path: the new file is read from its
// beginning as the next generation (it was taken for the closed file, the
// inode alone being checked, and read from the old offset).
func TestClosedFileReplacedByFileReusingItsInodeIsReadFromStart(t *testing.T) {
	fx := newFixture(t, "path = \"*.log\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nmax_open_files = 1\n")
	writeFile(t, fx.path("a.log"), "a1\n")
	writeFile(t, fx.path("b.log"), "b1\n")
	s := fx.open()
	got := readN(t, s, 2, 20*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %q, want a1 and b1", got)
	}
	var name string
	for _, n := range []string{"a.log", "b.log"} {
		if st := s.byPath[fx.path(n)]; st != nil && st.active != nil && st.active.f == nil {
			name = n
		}
	}
	if name == "" {
		t.Fatal("no file closed under max_open_files")
	}
	p := fx.path(name)
	oldID := statID(t, p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if !takeInode(t, s, fx, oldID, p, "new1\nnew2\n") {
		t.Skip("the filesystem did not reuse the inode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	b.Ack(nil)
	equal(t, name+" (new file, reused inode)", datas(t, b.Messages), []string{"new1", "new2"})
	if pos := b.Messages[0].Pos; pos.Stream != p || pos.Partition != 1 || pos.Offset != 0 {
		t.Fatalf("position %+v, want %s generation 1 offset 0", pos, p)
	}
}
