package wasmhost_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// event250 is a CloudEvent of about 250 bytes, as on the bench workload.
func event250(i int) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"orders-0-%06d","source":"bench","type":"order.created","time":"2026-01-02T03:04:05Z","data":{"order":%d,"name":"ada lovelace","region":"eu-west-1","amount":123.45,"items":[1,2,3]}}`, i, i)
}

func benchBatch(n int) []message.Message {
	in := make([]message.Message, n)
	for i := range in {
		b := event250(i)
		in[i] = message.Message{Payload: b, Event: b, Ref: int32(i), Pos: message.Position{Stream: "orders", Offset: int64(i)}, Time: time.Unix(1700000000, 0)}
	}
	return in
}

func runBatches(b *testing.B, tr *wasmhost.Transformer, in []message.Message, wantOut int) {
	wasmtest.RunBatches(b, tr, in, wantOut)
}

// BenchmarkGoGuestUpper is the Go-guest target: read a field, write one,
// on ~250-byte events, 256 per call, framing included (target >= 500k
// events/s on one core). The unprotected variant measures the cost of the
// runaway protection on a real guest.
func BenchmarkGoGuestUpper(b *testing.B) {
	wasm, _ := wasmtest.GoGuest(b, "upper")
	in := benchBatch(256)
	for _, protected := range []bool{true, false} {
		name := "protected"
		opt := wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}
		if !protected {
			name, opt = "unprotected", wasmhost.Unprotected(opt)
		}
		b.Run(name, func(b *testing.B) {
			m, err := sharedHost(b).Load(context.Background(), "upper", wasm, opt)
			if err != nil {
				b.Fatal(err)
			}
			tr := m.NewTransformer(wasmhost.TransformerConfig{Timeout: 10 * time.Second})
			if _, err := tr.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer tr.Close(context.Background())
			runBatches(b, tr, in, len(in))
		})
	}
}

// BenchmarkGoGuestPass measures the Go SDK's own cost per record: a
// handler that keeps every record.
func BenchmarkGoGuestPass(b *testing.B) {
	wasm, _ := wasmtest.GoGuest(b, "pass")
	tr := transformer(b, wasm, wasmhost.TransformerConfig{Timeout: 10 * time.Second})
	runBatches(b, tr, benchBatch(256), 256)
}

// BenchmarkHostOverhead measures the host's own cost per call with a guest
// that does nothing (targets: <= 2 µs per call, <= 10 ns per record).
func BenchmarkHostOverhead(b *testing.B) {
	tr := transformer(b, wasmtest.ABIModule{}.Bytes(), wasmhost.TransformerConfig{})
	for _, n := range []int{1, 256} {
		b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
			in := benchBatch(n)
			for i := range in { // small payloads: the cost is the framing, not the copy
				in[i].Payload = []byte(`{"a":1}`)
				in[i].Event = in[i].Payload
			}
			runBatches(b, tr, in, n)
		})
	}
}

// BenchmarkSecondStart measures a task's start with the Go test guest
// upper (2.3 MB, reported as MB) whose compiled code is in the on-disk cache: a new Host (as a new process
// would have), load, instantiate, init, and the first batch of one event
// (target <= 100 ms).
func BenchmarkSecondStart(b *testing.B) {
	wasm, _ := wasmtest.GoGuest(b, "upper")
	dir := b.TempDir()
	ctx := context.Background()
	start := func() {
		h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		m, err := h.Load(ctx, "upper", wasm, wasmhost.LoadOptions{MemoryLimit: 32 << 20})
		if err != nil {
			b.Fatal(err)
		}
		tr := m.NewTransformer(wasmhost.TransformerConfig{})
		if _, err := tr.Start(ctx); err != nil {
			b.Fatal(err)
		}
		out := &component.Output{}
		if err := tr.Process(ctx, benchBatch(1), out); err != nil || len(out.Messages) != 1 {
			b.Fatal(err, out.Failures)
		}
		tr.Close(ctx)
	}
	start() // first start: compiles and fills the cache
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		start()
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	// After the loop: ResetTimer drops metrics. The compiled code is what
	// wazero cached for the module, which a process holds in memory.
	b.ReportMetric(float64(len(wasm))/1e6, "MB")
	b.ReportMetric(float64(compiledSize(b, dir))/(1<<20), "compiled-MiB")
}

// compiledSize is the size of wazero's entries in the cache directory dir
// (not Sluice's rewritten modules beside them).
func compiledSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(filepath.Base(filepath.Dir(p)), "sluice-") {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// processCPU returns the CPU time of the whole process (all threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestMain(m *testing.M) {
	code := m.Run()
	if host != nil {
		host.Close(context.Background())
	}
	os.Exit(code)
}
