package testkit

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new temporary folder, for tests
// of a full disk, and unmounts it at the end of the test. Mounting needs
// root (CAP_SYS_ADMIN): without it the test is skipped, saying so. A mount
// that is permitted but fails otherwise is a broken machine: the test fails
// under SLUICE_INTEGRATION=1 and is skipped otherwise.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	return mountTmpfs(t, size, 0)
}

// TmpfsNoexec is Tmpfs mounted noexec: nothing in it may be mapped
// executable, as on a state directory of a hardened box.
func TmpfsNoexec(t testing.TB, size int64) string {
	t.Helper()
	return mountTmpfs(t, size, syscall.MS_NOEXEC)
}

func mountTmpfs(t testing.TB, size int64, flags uintptr) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|flags, fmt.Sprintf("size=%d,mode=0700", size))
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		t.Skipf("a full-disk test needs a small file system: mounting a tmpfs is not permitted here (%v); run as root (or with CAP_SYS_ADMIN) to run it", err)
	case err != nil && Integration():
		t.Fatalf("mount a %d-byte tmpfs on %s: %v (mounting is permitted but failed)", size, dir, err)
	case err != nil:
		t.Skipf("mount a %d-byte tmpfs on %s: %v (skipped; fails under SLUICE_INTEGRATION=1)", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file open: detach, the kernel
			// frees it once closed.
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount the tmpfs on %s: %v", dir, err)
			}
		}
	})
	return dir
}
