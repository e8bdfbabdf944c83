//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package buffer

import (
	"syscall"
	"testing"
)

// TestCloseReleasesLockHeldByACopy: a child process forked while the
// buffer is open holds a copy of the lock's descriptor until its exec
// closes it; Close must release the lock all the same, or a reopen right
// after it fails with ErrLocked (seen under emulation, where a parallel
// test's fork and exec are slow). The copy is made here with dup.
func TestCloseReleasesLockHeldByACopy(t *testing.T) {
	o := Options{Dir: t.TempDir(), MaxSize: 64 << 10, SegmentSize: 2 << 10, NoSync: true}
	b := openT(t, o)
	fd, err := syscall.Dup(int(b.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(o)
	if err != nil {
		t.Fatalf("reopen after Close while a copy of the lock's descriptor is open: %v", err)
	}
	b2.Close()
}
