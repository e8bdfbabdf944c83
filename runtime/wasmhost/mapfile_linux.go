//go:build linux && (amd64 || arm64)

package wasmhost

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the file at path read-only (mapped is what unmapFile
// releases, nil when the file was read instead). A rewritten module is
// mapped rather than read: reading it wrote 2.3 MB of fresh heap at every
// second start of a Go plugin (one page fault each 4 KiB), and its function
// bodies are slices of it until the host drops them.
func mapFile(path string) (b, mapped []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > MaxModuleSize+rewriteHeader {
		b, err := os.ReadFile(path) // and let the caller refuse it
		return b, nil, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		b, err := os.ReadFile(path)
		return b, nil, err
	}
	return m, m, nil
}

func unmapFile(mapped []byte) { _ = unix.Munmap(mapped) }
