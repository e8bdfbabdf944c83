//go:build unix

package buffer

import (
	"os"
	"syscall"
)

// unlinked reports whether f's file was deleted: no name links to it any
// more, so what is written to it is gone at the next start. (fstat on a
// Stat_t of its own: os.File.Stat allocates, and this runs per Append.)
func unlinked(f *os.File) bool {
	var st syscall.Stat_t
	return syscall.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0
}
