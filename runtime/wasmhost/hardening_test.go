package wasmhost_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// loadWith loads wasm with a memory limit of its own (the shared helper
// uses the default limit) and starts a transformer on it.
func loadWith(t testing.TB, wasm []byte, memoryLimit int64, cfg wasmhost.TransformerConfig) *wasmhost.Transformer {
	t.Helper()
	ctx := context.Background()
	m, err := sharedHost(t).Load(ctx, t.Name(), wasm, wasmhost.LoadOptions{MemoryLimit: memoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		lg := zerolog.New(zerolog.NewTestWriter(t))
		cfg.Logger = &lg
	}
	tr := m.NewTransformer(cfg)
	if _, err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(ctx) })
	return tr
}

// peakRSS is the process's peak resident set (VmHWM), or 0 where
// /proc/self/status does not exist.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb << 10
		}
	}
	return 0
}

// A module that emits a million empty outputs per record stays under any
// byte cap, but each output costs the host a message: before the count
// cap, a batch of four such records grew the host by gigabytes. Now each
// record fails alone with the reason, and the host allocates next to
// nothing.
func TestMillionEmptyOutputsFailTheRecord(t *testing.T) {
	const outputs = 1 << 20
	wasm := wasmtest.ABIModule{Outputs: outputs, Pages: (wasmtest.OutputsAt + 32*outputs + 65535) / 65536}.Bytes()
	tr := loadWith(t, wasm, 64<<20, wasmhost.TransformerConfig{})

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	peakBefore := peakRSS()
	out := process(t, tr, msgs("a", "b", "c", "d"))
	runtime.ReadMemStats(&after)
	peakAfter := peakRSS()

	if len(out.Messages) != 0 {
		t.Errorf("%d outputs delivered", len(out.Messages))
	}
	f := failures(out)
	for i := int32(0); i < 4; i++ {
		if !strings.Contains(f[i], fmt.Sprintf("outputs exceed max_outputs (%d)", wasmhost.DefaultMaxOutputs)) {
			t.Errorf("record %d: failure %q", i, f[i])
		}
	}
	alloc := int64(after.TotalAlloc - before.TotalAlloc)
	t.Logf("host allocations during the batch: %d KiB; peak RSS %d MiB -> %d MiB", alloc>>10, peakBefore>>20, peakAfter>>20)
	// Four records of a million messages are 680 MiB at least; the cap
	// leaves the failures and their messages.
	if alloc > 64<<20 {
		t.Errorf("the host allocated %d MiB for four failed records", alloc>>20)
	}
	if peakBefore > 0 && peakAfter-peakBefore > 256<<20 {
		t.Errorf("peak RSS grew by %d MiB", (peakAfter-peakBefore)>>20)
	}

	// Under the cap, outputs are delivered.
	few := loadWith(t, wasmtest.ABIModule{Outputs: 1000, Pages: 256}.Bytes(), 64<<20, wasmhost.TransformerConfig{})
	if out := process(t, few, msgs("a", "b")); len(out.Messages) != 2000 || len(out.Failures) != 0 {
		t.Errorf("1000 outputs per record: %d outputs, failures %v", len(out.Messages), failures(out))
	}
	capped := loadWith(t, wasmtest.ABIModule{Outputs: 1000, Pages: 256}.Bytes(), 64<<20, wasmhost.TransformerConfig{MaxOutputs: 1500})
	out = process(t, capped, msgs("a", "b"))
	if len(out.Messages) != 2000 || len(out.Failures) != 0 {
		t.Errorf("max_outputs 1500, 2 x 1000 outputs: the batch is split, each call under the cap: %d outputs, failures %v", len(out.Messages), failures(out))
	}
}

// The key-value state lives in host memory, outside memory_limit: a module
// that puts new keys forever must meet the quota, see FULL (the SDK's
// ErrStateFull), and the state's size must show in the metrics.
func TestStateQuota(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	set := metrics.New()
	kv := wasmhost.NewKVQuota(wasmhost.KVQuota{Bytes: 1 << 20})
	tr := transformer(t, wasm, wasmhost.TransformerConfig{Task: "tq", Metrics: set, KV: kv, Timeout: testkit.Scale(testkit.DefaultWait)})
	out := process(t, tr, msgs(`{"do":"fill"}`))
	if len(out.Messages) != 1 {
		t.Fatalf("outputs %v failures %v", payloads(out), failures(out))
	}
	// Each entry costs its key (7-10 bytes), its 1000-byte value and 64.
	var n int
	var msg string
	fmt.Sscanf(string(out.Messages[0].Payload), "%d", &n)
	_, msg, _ = strings.Cut(string(out.Messages[0].Payload), " ")
	if n < 950 || n > 1000 || msg != "sdk: state store is full" {
		t.Errorf("the guest stored %d entries of 1000 bytes in 1 MiB, then saw %q", n, msg)
	}
	keys, bytes := kv.Size()
	if keys != n || bytes > 1<<20 || bytes < 1<<20-1100 {
		t.Errorf("store: %d keys, %d bytes", keys, bytes)
	}
	gauge := func(name string) float64 {
		return value(set.Gauge(name, "", "task", "module").WithLabelValues("tq", t.Name()))
	}
	if g := gauge("wasm_state_keys"); g != float64(keys) {
		t.Errorf("wasm_state_keys = %v, want %d", g, keys)
	}
	if g := gauge("wasm_state_bytes"); g != float64(bytes) {
		t.Errorf("wasm_state_bytes = %v, want %d", g, bytes)
	}
	if c := value(set.Counter("wasm_state_refused_total", "", "task", "module").WithLabelValues("tq", t.Name())); c != 1 {
		t.Errorf("wasm_state_refused_total = %v, want 1", c)
	}
}

// A module whose loop does few iterations, each one large operation (a
// memory.fill of its whole memory, a WASI call over it, a 1 MiB kv_put),
// reached the host's check only every few thousand iterations: one call
// ran for tens of seconds against a 100ms budget, and since compiled guest
// code cannot be preempted, the garbage collector's stop-the-world waited
// for it, freezing every other task of the process. Now bulk operations
// are weighed by their length and host functions' time counts: the call
// stops near its budget, and an innocent task running next to it is never
// stalled for long.
func TestHostileModuleDoesNotStallOthers(t *testing.T) {
	innocent := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Task: "innocent"})
	for _, hog := range []string{"fill", "copy", "random", "write", "kv"} {
		t.Run(hog, func(t *testing.T) {
			lg := zerolog.Nop() // the "write" hog logs its memory
			hostile := loadWith(t, wasmtest.ABIModule{Hog: hog, Pages: testMemoryLimit >> 16}.Bytes(), testMemoryLimit,
				wasmhost.TransformerConfig{Task: "hostile", Timeout: 100 * time.Millisecond, Logger: &lg})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var maxGap time.Duration
			var batches int
			running := make(chan struct{})
			wg.Add(2)
			go func() { // the innocent task
				defer wg.Done()
				last := time.Now()
				first := true
				defer func() {
					if first { // failed before its first batch
						close(running)
					}
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					out := &component.Output{}
					if err := innocent.Process(context.Background(), msgs("a", "b", "c"), out); err != nil || len(out.Messages) != 3 {
						t.Errorf("innocent batch: %v, %d outputs", err, len(out.Messages))
						return
					}
					now := time.Now()
					if first {
						first = false
						close(running)
					} else {
						maxGap = max(maxGap, now.Sub(last))
						batches++
					}
					last = now
				}
			}()
			go func() { // a process that allocates: collections keep coming
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						runtime.GC()
					}
				}
			}()
			<-running // the gaps are measured from the innocent task's first batch
			start := time.Now()
			out := process(t, hostile, msgs("x"))
			took := time.Since(start)
			close(stop)
			wg.Wait()

			t.Logf("hostile call stopped after %v; innocent task: %d batches, longest gap %v", took, batches, maxGap)
			if f := failures(out); !strings.Contains(f[0], "exceeded its time budget of 100ms") {
				t.Errorf("hostile record: %q, want a timeout", f[0])
			}
			// The budget is CPU time, stretched up to 10x in wall time on a
			// starved machine: 1s. Before, these calls ran for 10-60s.
			if limit := testkit.Scale(5 * time.Second); took > limit {
				t.Errorf("the hostile call ran %v against a budget of 100ms", took)
			}
			// Measured: 5-130ms, up to 480ms under the race detector on a
			// loaded 2-core machine; before, the whole call (minutes).
			if limit := testkit.Scale(2 * time.Second); maxGap > limit {
				t.Errorf("the innocent task was stalled for %v", maxGap)
			}
			if batches == 0 {
				t.Errorf("the innocent task processed nothing while the hostile call ran")
			}
		})
	}
}

// Go guests copy and clear memory with memory.copy and memory.fill (the
// runtime's memmove and memclr): the rewrite weighs them, and a module
// loaded from the rewrite cache reports the same as a fresh rewrite.
func TestGoGuestBulkOperationsWeighed(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	// A second host reads the rewritten module from the disk cache.
	fresh, err := wasmhost.New(context.Background(), wasmhost.Options{CacheDir: wasmtest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	for _, h := range []*wasmhost.Host{sharedHost(t), fresh} {
		in, err := h.Inspect(context.Background(), "hostile", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		if err != nil {
			t.Fatal(err)
		}
		if in.InstrumentedBulk == 0 || in.InstrumentedLoops == 0 {
			t.Errorf("bulk operations weighed: %d, loops checked: %d", in.InstrumentedBulk, in.InstrumentedLoops)
		}
		t.Logf("%d bulk operations, %d loops", in.InstrumentedBulk, in.InstrumentedLoops)
	}
}

// TestModuleDeclaringMoreThanItHolds: a 21-byte module whose data section
// declares a billion segments is refused with what is wrong. It used to
// reach wazero's decoder, which allocated what it declared (52 GB) and
// crashed the process with every task in it.
func TestModuleDeclaringMoreThanItHolds(t *testing.T) {
	bomb := []byte("\x00asm\x01\x00\x00\x00\x0b\x0b\xdb\xdb\xdb\xdb\x03\xe8\xdb\xdb0\x000")
	_, err := sharedHost(t).Load(context.Background(), "bomb.wasm", bomb, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
	if err == nil || !strings.Contains(err.Error(), "data section: declares 997649883 entries in 6 bytes") {
		t.Fatalf("Load: %v, want the data section's count refused", err)
	}
}

// TestDamagedRewrittenModuleNotUsed: a rewritten module read back from the
// cache is checked as the rewrite checks its input. An entry that fails
// (damaged, or written by an older rewrite that accepted more) is not
// handed to wazero: the module is rewritten again from its file.
func TestDamagedRewrittenModuleNotUsed(t *testing.T) {
	h, err := wasmhost.New(context.Background(), wasmhost.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	good := wasmtest.ABIModule{}.Bytes()
	path := h.RewrittenPath(good, testMemoryLimit/65536)
	bomb := []byte("\x00asm\x01\x00\x00\x00\x0b\x0b\xdb\xdb\xdb\xdb\x03\xe8\xdb\xdb0\x000")
	entry := append(append([]byte("SLRW"), make([]byte, 28)...), bomb...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, entry, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(context.Background(), "good.wasm", good, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); err != nil {
		t.Fatalf("Load with a damaged cache entry: %v", err)
	}
	if data, _ := os.ReadFile(path); bytes.Contains(data, bomb) {
		t.Error("the damaged cache entry was kept")
	}
}

// Sluice's wazero validates a module's function bodies when it compiles
// them, not when a compilation-cache entry for the same bytes exists
// (wazerofork/SLUICE.md): a body that does not type-check is refused on
// the first load, and again by every later host sharing the cache
// directory, since a refused module leaves no entry.
func TestInvalidFunctionBodyRefusedWithACache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bad := wasmtest.Module{MemoryPages: 1, ExportMemory: true, Funcs: []wasmtest.Func{{
		Type:   wasmtest.FuncType{Results: []byte{wasmtest.I32}},
		Body:   wasmtest.Code{}.I32Const(1).Op(0x6a), // i32.add with one operand
		Export: "f",
	}}}.Bytes()
	good := wasmtest.ABIModule{}.Bytes()
	for i := range 2 {
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Load(ctx, "bad.wasm", bad, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
		if err == nil || !strings.Contains(err.Error(), "invalid function[0]") {
			t.Errorf("load %d of a module whose body does not type-check: %v, want it refused", i+1, err)
		}
		// The same directory serves a valid module from the cache the second time.
		if _, err := h.Load(ctx, "good.wasm", good, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); err != nil {
			t.Errorf("load %d of a valid module: %v", i+1, err)
		}
		h.Close(ctx)
	}
}
