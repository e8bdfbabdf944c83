//go:build unix

package buffer

import (
	"errors"
	"syscall"
)

// isNoSpace reports a write refused because the file system (or the
// user's quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
