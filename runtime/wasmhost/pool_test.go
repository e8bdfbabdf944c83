package wasmhost_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestIdleInstancesRetired: after a burst that needed four instances, a
// quiet transformer closes all but one (their guest memory goes back), the
// gauge follows, and the next calls still work, starting instances again
// as they need them.
func TestIdleInstancesRetired(t *testing.T) {
	ms := metrics.New()
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{
		Task: "pool", Instances: 4, IdleTimeout: 20 * time.Millisecond, Metrics: ms,
	})
	gauge := ms.Gauge("wasm_instances", "", "task", "module").WithLabelValues("pool", t.Name())
	ctx := context.Background()
	for round := range 2 {
		put, err := tr.Hold(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		if n := tr.Live(); n != 4 || value(gauge) != 4 {
			t.Fatalf("round %d: %d live instances (gauge %v) while four calls run, want 4", round, n, value(gauge))
		}
		put()
		testkit.WaitFor(t, "the idle instances beyond the first to be closed", func() bool { return tr.Live() == 1 })
		if value(gauge) != 1 {
			t.Fatalf("round %d: gauge %v after retiring, want 1", round, value(gauge))
		}
		if got := strings.Join(payloads(process(t, tr, msgs("a", "b"))), ","); got != "a,b" {
			t.Fatalf("round %d: outputs after retiring = %q", round, got)
		}
	}
}

// TestBusyInstancesKept: instances in use, or idle for less than the
// timeout, are not retired; Close with a retirement pending ends cleanly.
func TestBusyInstancesKept(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{
		Instances: 3, IdleTimeout: time.Hour,
	})
	put, err := tr.Hold(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	put()
	if n := tr.Live(); n != 3 {
		t.Fatalf("%d live instances right after a burst of three, want 3 (the timeout is an hour)", n)
	}
	if got := strings.Join(payloads(process(t, tr, msgs("x"))), ","); got != "x" {
		t.Fatalf("outputs = %q", got)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := tr.Live(); n != 0 {
		t.Fatalf("%d live instances after Close, want 0", n)
	}
}

// TestRetireWhileBusy: retirement runs while calls come and go (a 1 ms
// timeout); every call gets its outputs and the pool ends with one
// instance.
func TestRetireWhileBusy(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{
		Instances: 3, IdleTimeout: time.Millisecond,
	})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 40 {
				out := &component.Output{}
				if err := tr.Process(context.Background(), msgs("a", fmt.Sprint(g, i)), out); err != nil {
					t.Error(err)
					return
				}
				if len(out.Messages) != 2 {
					t.Errorf("got %d outputs, want 2", len(out.Messages))
				}
				if i%8 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, "the pool to shrink to one instance", func() bool { return tr.Live() == 1 })
}

// TestCloseWhileReleasing: a Close that runs while a call puts its
// instance back, right after the call saw the transformer open, still
// closes that instance. It was put back after the lock was let go, so it
// could land in the pool after Close had emptied it: never closed, its
// memory reservation leaked. The test hook runs Close at that very point.
func TestCloseWhileReleasing(t *testing.T) {
	ms := metrics.New()
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Task: "close", Metrics: ms})
	gauge := ms.Gauge("wasm_instances", "", "task", "module").WithLabelValues("close", t.Name())
	ctx := context.Background()
	closes := 0
	tr.AfterRelease(func() {
		closes++
		if err := tr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	if got := payloads(process(t, tr, msgs("a"))); len(got) != 1 {
		t.Fatalf("outputs %q", got)
	}
	if closes != 1 {
		t.Fatalf("the hook ran %d times, want 1", closes)
	}
	if n := tr.Live(); n != 0 {
		t.Errorf("%d instance(s) live after Close", n)
	}
	if v := value(gauge); v != 0 {
		t.Errorf("wasm_instances = %v after Close", v)
	}
}
