//go:build !linux

package testkit

import "testing"

// Tmpfs mounts a small tmpfs for tests of a full disk; it is Linux only,
// and skips the test elsewhere.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("a full-disk test mounts a tmpfs, which this test helper does on Linux only")
	return ""
}

// TmpfsNoexec is Tmpfs mounted noexec: Linux only, like Tmpfs.
func TmpfsNoexec(t testing.TB, size int64) string { return Tmpfs(t, size) }
