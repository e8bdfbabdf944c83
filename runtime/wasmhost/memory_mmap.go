//go:build unix && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package wasmhost

import "golang.org/x/sys/unix"

// newGuestMemory reserves each instance's maximum memory as address space
// that is not accessible (PROT_NONE: no memory, no commit charge) and makes
// it readable and writable as the guest grows: growing never moves or
// copies, pages become resident only when the guest touches them, and
// closing the instance gives them back to the system at once. Only on
// 64-bit platforms: a 4 GiB maximum does not fit a 32-bit address space,
// where wazero's default applies.
var newGuestMemory = func(cap, max uint64) guestMemory { return newMappedMemory(cap, max) }

// mappedMemory is one instance's linear memory.
type mappedMemory struct {
	reserved []byte // the whole reservation (the module's maximum)
	usable   int    // bytes made readable and writable so far
	fallback []byte // set when the reservation failed: a heap buffer
	failed   bool
}

func newMappedMemory(_, max uint64) *mappedMemory {
	m := &mappedMemory{}
	size := roundPage(max)
	if size == 0 || size > 1<<32 {
		m.failed = true
		return m
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		// Out of address space (ulimit -v): the heap, as wazero would.
		m.failed = true
		return m
	}
	m.reserved = b
	return m
}

// Reallocate implements experimental.LinearMemory.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if m.failed {
		if size > uint64(cap(m.fallback)) {
			grown := make([]byte, size)
			copy(grown, m.fallback)
			m.fallback = grown
		}
		m.fallback = m.fallback[:size]
		return m.fallback
	}
	if size > uint64(len(m.reserved)) {
		return nil // past the maximum: memory.grow fails in the guest
	}
	if want := int(roundPage(size)); want > m.usable {
		if err := unix.Mprotect(m.reserved[m.usable:want], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil // out of memory (commit limit): memory.grow fails
		}
		m.usable = want
	}
	return m.reserved[:size:size]
}

// Free implements experimental.LinearMemory: wazero calls it when the
// module closes. The pages go back to the system at once; the reservation
// stays, readable as zeros, until release (see guestMemory).
func (m *mappedMemory) Free() {
	if m.reserved != nil && m.usable > 0 {
		_ = unix.Madvise(m.reserved[:m.usable], unix.MADV_DONTNEED)
	}
	m.fallback = nil
}

func (m *mappedMemory) release() {
	if m.reserved != nil {
		_ = unix.Munmap(m.reserved)
		m.reserved, m.usable = nil, 0
	}
	m.fallback = nil
}

func roundPage(n uint64) uint64 {
	p := uint64(unix.Getpagesize())
	return (n + p - 1) / p * p
}
