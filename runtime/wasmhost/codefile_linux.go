//go:build linux && (amd64 || arm64)

package wasmhost

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// releasePages unmaps the pages of code, mapped from a file, from the
// process (MADV_DONTNEED on a private file mapping never written to).
func releasePages(code []byte) {
	_ = unix.Madvise(unsafe.Slice(unsafe.SliceData(code), roundPage(uint64(len(code)))), unix.MADV_DONTNEED)
}
