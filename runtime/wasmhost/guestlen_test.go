package wasmhost

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	wt "github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// guestMemory1 instantiates a module of one page of memory, with wazero's
// interpreter (the only engine on 32-bit platforms).
func guestMemory1(t *testing.T) *instance {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { r.Close(ctx) })
	m, err := r.Instantiate(ctx, wt.Module{MemoryPages: 1, ExportMemory: true}.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	st := newState(nil, "t", "m", nil, NewKV(0))
	inst := &instance{m: m, mem: m.Memory(), state: st}
	inst.cctx.inst = inst
	return inst
}

// The length of a region a guest returns (sluice_init's message,
// sluice_describe's JSON) is a uint32: past 2^31 it was a negative int on
// 32-bit platforms (armv7 is a release platform) and passed the limit
// check; memory's own bounds check then refused it as "outside memory".
// A region of 2^31 bytes is over the 4096 accepted, and the error must say
// so. Failed on armv7 before the fix; passes on 64-bit platforms either way.
func TestGuestReadLimitPast2To31(t *testing.T) {
	inst := guestMemory1(t)
	_, err := inst.read(0x80000000, 4096)
	if err == nil || !strings.Contains(err.Error(), "module returned 2147483648 bytes where at most 4096 are accepted") {
		t.Errorf("read of 2^31 bytes: %v", err)
	}
}

// kv_get's buf_cap is a uint32: past 2^31 it was a negative int on 32-bit
// platforms (armv7), so a value that fits was reported as too large for the
// buffer and not copied, while kv_get returned its length as though it
// was: the guest read its own buffer as the value. Failed on armv7 before
// the fix; passes on 64-bit platforms either way.
func TestKVGetBufCapPast2To31(t *testing.T) {
	inst := guestMemory1(t)
	if inst.state.kv.Put([]byte("k"), []byte("value"), 0) != KVOK {
		t.Fatal("put")
	}
	inst.mem.Write(0, []byte("k"))
	stack := []uint64{0, 1, 100, 0xffffffff}
	hostKVGet(&inst.cctx, inst.m, stack)
	if got, _ := inst.mem.Read(100, 5); int32(stack[0]) != 5 || string(got) != "value" {
		t.Errorf("kv_get with buf_cap 2^32-1 returned %d, buffer %q; want 5, \"value\"", int32(stack[0]), got)
	}
}
