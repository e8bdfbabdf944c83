//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package buffer

import "os"

// lockFile is a no-op where flock is unavailable: opening one buffer
// directory twice is then not detected.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
