package wasmhost

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// insertSection inserts a section with id before the first section
// whose id is larger in the binary order (used for the table section, id 4,
// which goes before the memory section, id 5).
func insertSection(t *testing.T, wasm []byte, id byte, body []byte) []byte {
	t.Helper()
	out := append([]byte(nil), wasm[:8]...)
	pos := 8
	inserted := false
	for pos < len(wasm) {
		sid := wasm[pos]
		// section size, LEB128
		size, n := uint32(0), 0
		for shift := 0; ; shift += 7 {
			b := wasm[pos+1+n]
			n++
			size |= uint32(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		end := pos + 1 + n + int(size)
		if !inserted && sid != 0 && sid > id {
			out = append(out, id)
			out = wasmtest.AppendU32(out, uint32(len(body)))
			out = append(out, body...)
			inserted = true
		}
		out = append(out, wasm[pos:end]...)
		pos = end
	}
	if !inserted {
		t.Fatal("no place for the section")
	}
	return out
}

// TestManyTablesKeepToTheHostBudget: the ABI promises tables cost at most
// 8 MiB per instance in the host (1,048,576 elements), outside
// memory_limit. The cap was per table: 16 tables of 1,048,576 elements
// each took 128 MiB of host heap per instance (review). Now the starting
// sizes of all tables count together, and their maximums share the rest.
func TestManyTablesKeepToTheHostBudget(t *testing.T) {
	tablesOf := func(n int, size uint32) []byte {
		body := wasmtest.AppendU32(nil, uint32(n))
		for range n {
			body = append(body, 0x70, 0x00) // funcref, no maximum
			body = wasmtest.AppendU32(body, size)
		}
		return insertSection(t, wasmtest.ABIModule{}.Bytes(), 4, body)
	}
	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	_, err = h.Load(ctx, "tables.wasm", tablesOf(16, instrument.MaxTableSize), LoadOptions{MemoryLimit: 8 << 20})
	if err == nil || !strings.Contains(err.Error(), "per instance") {
		t.Fatalf("16 tables of %d elements: %v, want the load refused (per instance)", instrument.MaxTableSize, err)
	}
	m, err := h.Load(ctx, "small.wasm", tablesOf(2, 1000), LoadOptions{MemoryLimit: 8 << 20})
	if err != nil {
		t.Fatalf("2 tables of 1000 elements: %v", err)
	}
	inst, err := m.newInstance(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inst.close(ctx)
}
