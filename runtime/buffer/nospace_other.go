//go:build !unix

package buffer

import (
	"errors"
	"syscall"
)

// isNoSpace reports a write refused because the file system is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC)
}
