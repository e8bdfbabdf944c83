//go:build !linux

package platform

import (
	"errors"
	"os"
)

// MapCodeFile is not offered here (Sluice): the cache entry's code is read
// into anonymous memory (on macOS a private executable mapping of a file
// would need the file signed).
func MapCodeFile(*os.File, int64, int) ([]byte, error) { return nil, errors.ErrUnsupported }

// MunmapCodeFile releases a mapping of MapCodeFile: there is none here.
func MunmapCodeFile([]byte) error { return errors.ErrUnsupported }

// MoveCodeOver is not offered here (Sluice).
func MoveCodeOver(src, dst []byte) error { return errors.ErrUnsupported }
