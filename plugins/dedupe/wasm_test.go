package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// events returns n events with keys k0..k(n-1) on stream, in an order set
// by step (coprime with n).
func events(stream string, n, step int) []message.Message {
	in := make([]message.Message, n)
	for i := range in {
		k := (i * step) % n
		p := fmt.Appendf(nil, `{"data":{"id":"k%d","from":%q}}`, k, stream)
		in[i] = message.Message{Payload: p, Event: p, Ref: int32(i), Pos: message.Position{Stream: stream, Offset: int64(i)}}
	}
	return in
}

// TestWASMPooledInstances pushes the same keys through four instances at
// once: each key passes exactly once in total.
func TestWASMPooledInstances(t *testing.T) {
	tr := plugintest.Load(t, "dedupe.wasm", plugintest.Build(t, "dedupe"), `{"key":"data.id","window":"1h"}`,
		wasmhost.TransformerConfig{Instances: 4, MaxBatch: 64})
	const keys, workers = 2000, 4
	var passed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := events(fmt.Sprintf("s%d", w), keys, []int{1, 7, 13, 1999}[w])
			for len(in) > 0 {
				n := min(len(in), 100)
				var out component.Output
				if err := tr.Process(context.Background(), in[:n], &out); err != nil {
					errs <- err
					return
				}
				if len(out.Failures) > 0 {
					errs <- fmt.Errorf("failures %v", out.Failures)
					return
				}
				passed.Add(int64(len(out.Messages)))
				in = in[n:]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if passed.Load() != keys {
		t.Errorf("%d events passed for %d keys across %d concurrent workers", passed.Load(), keys, workers)
	}
	if n := tr.KV().Len(); n != keys {
		t.Errorf("state holds %d keys, want %d", n, keys)
	}
}

// TestWASMReplacedInstance makes the instance trap (an event too large
// for its memory), so the host discards it; the new instance still knows
// every key seen before. A new transformer on the same state (a restart
// with persist_state) does too.
func TestWASMReplacedInstance(t *testing.T) {
	wasm := plugintest.Build(t, "dedupe")
	kv := wasmhost.NewKV(0)
	tr := plugintest.Load(t, "dedupe.wasm", wasm, `{"key":"data.id","window":"1h"}`, wasmhost.TransformerConfig{KV: kv})
	if r := plugintest.Run(t, tr, events("a", 10, 1)); len(r.Payloads) != 10 {
		t.Fatalf("first batch: %+v", r)
	}
	huge := []byte(`{"data":{"id":"big","pad":"` + strings.Repeat("x", 40<<20) + `"}}`)
	in := append(events("b", 3, 1), message.Message{Payload: huge, Event: huge, Ref: 3, Pos: message.Position{Stream: "b", Offset: 3}})
	in = append(in, events("c", 12, 1)[10:]...)
	in[4].Ref, in[5].Ref = 4, 5
	r := plugintest.Run(t, tr, in)
	if len(r.Failures) != 1 || r.Failures[0].Ref != 3 {
		t.Fatalf("failures %v", r.Failures)
	}
	// k0..k2 were seen in the first batch; k10 and k11 are new.
	if strings.Join(r.Payloads, " ") != `{"data":{"id":"k10","from":"c"}} {"data":{"id":"k11","from":"c"}}` {
		t.Errorf("after the trap: %q", r.Payloads)
	}
	tr2 := plugintest.Load(t, "dedupe.wasm", wasm, `{"key":"data.id","window":"1h"}`, wasmhost.TransformerConfig{KV: kv})
	if r := plugintest.Run(t, tr2, events("d", 14, 1)); strings.Join(r.Payloads, " ") != `{"data":{"id":"k12","from":"d"}} {"data":{"id":"k13","from":"d"}}` {
		t.Errorf("new transformer: %q", r.Payloads)
	}
}
