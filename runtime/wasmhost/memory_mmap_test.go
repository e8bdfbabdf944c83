//go:build unix && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package wasmhost

import (
	"testing"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// Growing mapped guest memory keeps its address and contents, new bytes
// read zero, a size past the maximum is refused, Free drops the pages
// (reads see zeros, not a fault) and release unmaps.
func TestMappedMemoryGrowsInPlace(t *testing.T) {
	const page = 65536
	m := newMappedMemory(page, 8*page)
	lm := experimental.LinearMemory(m)
	if m.failed {
		t.Fatal("reserving 512 KiB of address space failed")
	}
	b := lm.Reallocate(page)
	if len(b) != page {
		t.Fatalf("len %d, want %d", len(b), page)
	}
	b[0], b[page-1] = 1, 2
	g := lm.Reallocate(3 * page)
	if len(g) != 3*page || unsafe.SliceData(g) != unsafe.SliceData(b) {
		t.Fatalf("grown memory moved or has len %d", len(g))
	}
	if g[0] != 1 || g[page-1] != 2 || g[page] != 0 || g[3*page-1] != 0 {
		t.Fatalf("contents after growth: %d %d %d %d", g[0], g[page-1], g[page], g[3*page-1])
	}
	g[3*page-1] = 3 // the grown part is writable
	if lm.Reallocate(9*page) != nil {
		t.Fatal("growth past the maximum succeeded")
	}
	lm.Free()
	if g[0] != 0 || g[3*page-1] != 0 {
		t.Fatal("memory freed by wazero still holds the guest's bytes")
	}
	m.release()
	if m.reserved != nil || m.usable != 0 {
		t.Fatal("release left the reservation in place")
	}
}

// A maximum that cannot be reserved falls back to a heap buffer that still
// grows and keeps its contents.
func TestMappedMemoryFallback(t *testing.T) {
	lm := newMappedMemory(0, 0) // no maximum to reserve
	b := lm.Reallocate(10)
	b[9] = 7
	g := lm.Reallocate(100)
	if len(g) != 100 || g[9] != 7 || g[99] != 0 {
		t.Fatalf("fallback growth: len %d, g[9]=%d", len(g), g[9])
	}
	lm.Free()
	lm.release()
}
