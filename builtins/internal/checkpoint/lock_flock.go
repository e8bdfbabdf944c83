//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package checkpoint

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f without waiting. The kernel
// drops it when the process dies, so a crash never leaves a stale lock.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

// unlockFile releases the lock before f is closed. Closing alone is not
// enough: a child process forked meanwhile (until its exec closes it) holds
// a copy of the descriptor, and the lock lasts until every copy is closed,
// so a restart of the task in the same process could fail with ErrLocked.
// LOCK_UN releases it for all copies.
func unlockFile(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
