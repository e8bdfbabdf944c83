//go:build linux && (amd64 || arm64)

package wasmhost

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluicehq/sluice/runtime/statedir"
)

// mapCodeFile maps the file at path over code, the machine code of a
// compiled module, which nothing runs yet. The file holds code and zeros
// to the end of its last page. A file that is missing or holds anything
// else is written again first (a new file renamed over the old one, so
// processes that map the old one keep it). Any failure leaves code where
// it is, in anonymous memory: a state directory on a noexec file system,
// a full disk.
//
// The file is compared with code before it is mapped, so a damaged file
// or one from another wazero never runs: the compiled code came from
// wazero, which checks its own cache entries. Like wazero's cache, the
// file is trusted once mapped: the state directory must be writable only
// by Sluice's user (docs/security.md).
func mapCodeFile(path string, code []byte) error {
	addr := unsafe.Pointer(unsafe.SliceData(code))
	if len(code) == 0 || uintptr(addr)%uintptr(os.Getpagesize()) != 0 {
		return errors.New("the code does not start a page")
	}
	size := int(roundPage(uint64(len(code))))
	f, err := os.Open(path)
	if err == nil && !sameCode(f, code, size) {
		f.Close()
		err = os.ErrNotExist
	}
	if err == nil {
		touch(path) // in use (pruneCache)
	}
	if err != nil {
		if f, err = writeCode(path, code, size); err != nil {
			return err
		}
	}
	defer f.Close()
	// Mapped elsewhere first, then moved over the code: mremap replaces
	// the old pages in one step, and leaves them in place when it fails
	// (mmap with MAP_FIXED may unmap them before it fails).
	m, err := unix.MmapPtr(int(f.Fd()), 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	if _, err := unix.MremapPtr(m, uintptr(size), addr, uintptr(size), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED); err != nil {
		_ = unix.MunmapPtr(m, uintptr(size))
		return err
	}
	return nil
}

// sameCode reports whether f holds code padded with zeros to size bytes.
func sameCode(f *os.File, code []byte, size int) bool {
	if st, err := f.Stat(); err != nil || st.Size() != int64(size) {
		return false
	}
	buf := make([]byte, 256<<10)
	for off := 0; off < size; {
		n, err := io.ReadFull(f, buf[:min(len(buf), size-off)])
		if err != nil {
			return false
		}
		got := buf[:n]
		if off < len(code) {
			k := min(n, len(code)-off)
			if !bytes.Equal(got[:k], code[off:off+k]) {
				return false
			}
			got = got[k:]
		}
		for _, b := range got {
			if b != 0 {
				return false
			}
		}
		off += n
	}
	return true
}

// writeCode writes code padded with zeros to size bytes to a new file
// renamed to path, and returns it open for reading.
func writeCode(path string, code []byte, size int) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, statedir.DirMode); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".code-*")
	if err != nil {
		return nil, err
	}
	_, err = tmp.Write(code)
	if err == nil {
		err = tmp.Truncate(int64(size))
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return tmp, nil
}

// releasePages unmaps the pages of code, mapped from a file, from the
// process (MADV_DONTNEED on a private file mapping never written to).
func releasePages(code []byte) {
	_ = unix.Madvise(unsafe.Slice(unsafe.SliceData(code), roundPage(uint64(len(code)))), unix.MADV_DONTNEED)
}
