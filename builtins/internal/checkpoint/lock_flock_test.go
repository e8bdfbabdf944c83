//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package checkpoint

import (
	"syscall"
	"testing"
)

// TestCloseReleasesLockHeldByACopy: a child process forked while the store
// is open holds a copy of the lock's descriptor until its exec closes it;
// Close must release the lock all the same (the copy is made with dup).
func TestCloseReleasesLockHeldByACopy(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(s.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, "t")
	if err != nil {
		t.Fatalf("reopen after Close while a copy of the lock's descriptor is open: %v", err)
	}
	s2.Close()
}
