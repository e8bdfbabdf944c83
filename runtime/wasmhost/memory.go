package wasmhost

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// Guest linear memory lives outside the Go heap where the platform allows
// (memory_mmap.go): wazero's default keeps it in a Go []byte that grows by
// append, so every memory.grow of a Go guest (its runtime grows in 4 MiB
// steps) copied the whole memory and left the old copy to the collector,
// and the guest's memory counted in the heap's size, which raised the
// collector's goal by as much again (docs/performance.md, "Memory").
type guestMemory interface {
	experimental.LinearMemory
	// release gives the address space back. wazero's Free (when the module
	// closes, also on its own when the guest exits) only drops the pages:
	// the host may still read the memory of a closed module (the cursor of
	// a failed call), which then reads zeros. release runs when the
	// instance is dropped, after which nothing reads it.
	release()
}

// memoryContext makes the instantiation under ctx back the instance's
// memory with newGuestMemory, when the platform has one.
func (inst *instance) memoryContext(ctx context.Context) context.Context {
	if newGuestMemory == nil {
		return ctx
	}
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(cap, max uint64) experimental.LinearMemory {
		m := newGuestMemory(cap, max)
		inst.memory = m
		return m
	}))
}

func (inst *instance) releaseMemory() {
	if inst.memory != nil {
		inst.memory.release()
		inst.memory = nil
	}
}
