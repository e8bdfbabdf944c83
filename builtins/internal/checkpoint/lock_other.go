//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoint

import "os"

// lockFile is a no-op where flock is unavailable: running one task twice on
// the same state directory is then not detected.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
