package platform

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MapCodeFile maps n bytes of f from off (a multiple of 64 KiB) read-only,
// executable and private: native code that runs from the page cache
// (Sluice; filecache.CodeMapper). MunmapCodeFile releases it.
//
// Where the mapping lands matters for memory. A file system with large
// folios (ext4 since Linux 6.16) keeps a file just written in pages of up
// to 2 MiB, and the kernel maps such a page whole at the first touch of
// any part of it (Linux 6.18), or as one huge page, when the address
// space lines up with the file (the address minus the offset a multiple
// of 2 MiB), which is where it puts a large file mapping. A Go module's
// start touches code all over its 9 MiB, and all of it would stay
// resident after the host releases it. So the code is mapped 64 KiB out of
// line: pages of up to 64 KiB are mapped as before, larger ones a part
// at a time.
func MapCodeFile(f *os.File, off int64, n int) ([]byte, error) {
	const (
		span  = 2 << 20  // a multiple of every huge page size
		skew  = 64 << 10 // the address minus the offset, modulo span
		flags = unix.MAP_PRIVATE
	)
	size := roundPage(n)
	// Reserve enough address space to pick the address within it.
	res, err := unix.MmapPtr(-1, 0, nil, uintptr(size+span), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	base := uintptr(res)
	want := (uintptr(off) + skew) % span
	addr := base + (want+span-base%span)%span
	p, err := unix.MmapPtr(int(f.Fd()), off, unsafe.Pointer(addr), uintptr(size), unix.PROT_READ|unix.PROT_EXEC, flags|unix.MAP_FIXED)
	if err != nil {
		_ = unix.MunmapPtr(res, uintptr(size+span))
		return nil, err
	}
	if head := addr - base; head > 0 {
		_ = unix.MunmapPtr(res, head)
	}
	if tail := base + uintptr(size+span) - (addr + uintptr(size)); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Pointer(addr+uintptr(size)), tail)
	}
	b := unsafe.Slice((*byte)(p), n)
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE) // a kernel without THP refuses it: nothing to prevent
	return b, nil
}

// MunmapCodeFile releases a mapping of MapCodeFile.
func MunmapCodeFile(b []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(roundPage(len(b))))
}

func roundPage(n int) int {
	pg := os.Getpagesize()
	return (n + pg - 1) &^ (pg - 1)
}

// MoveCodeOver moves the mapping src (of MapCodeFile) to dst, the same
// length, in one step: the pages at dst are replaced or, on failure, left
// as they were (mmap with MAP_FIXED may unmap them before it fails). dst
// is then released with MunmapCodeFile.
func MoveCodeOver(src, dst []byte) error {
	if len(src) != len(dst) {
		return unix.EINVAL
	}
	size := uintptr(roundPage(len(src)))
	_, err := unix.MremapPtr(unsafe.Pointer(unsafe.SliceData(src)), size, unsafe.Pointer(unsafe.SliceData(dst)), size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED)
	return err
}
