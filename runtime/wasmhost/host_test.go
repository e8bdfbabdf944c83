package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// testMemoryLimit is the limit every test loads Go guests with: the
// default of the wasm transform, so that one compiled module (keyed by the
// rewritten bytes, which carry the limit) serves every test package.
const testMemoryLimit = 32 << 20

var (
	hostOnce sync.Once
	host     *wasmhost.Host
)

// sharedHost is one Host per test binary, on the repository-wide cache.
func sharedHost(t testing.TB) *wasmhost.Host {
	t.Helper()
	hostOnce.Do(func() {
		h, err := wasmhost.New(context.Background(), wasmhost.Options{CacheDir: wasmtest.CacheDir()})
		if err != nil {
			t.Fatal(err)
		}
		host = h
	})
	return host
}

func msgs(payloads ...string) []message.Message {
	out := make([]message.Message, len(payloads))
	for i, p := range payloads {
		b := []byte(p)
		out[i] = message.Message{Payload: b, Event: b, Ref: int32(i), Pos: message.Position{Stream: "s", Offset: int64(i)}}
	}
	return out
}

func transformer(t testing.TB, wasm []byte, cfg wasmhost.TransformerConfig) *wasmhost.Transformer {
	t.Helper()
	ctx := context.Background()
	m, err := sharedHost(t).Load(ctx, t.Name(), wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		lg := zerolog.New(zerolog.NewTestWriter(t))
		if _, ok := t.(*testing.B); ok {
			lg = zerolog.Nop()
		}
		cfg.Logger = &lg
	}
	tr := m.NewTransformer(cfg)
	if _, err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(ctx) })
	return tr
}

func process(t *testing.T, tr *wasmhost.Transformer, in []message.Message) *component.Output {
	t.Helper()
	out := &component.Output{}
	if err := tr.Process(context.Background(), in, out); err != nil {
		t.Fatalf("process: %v", err)
	}
	return out
}

func payloads(out *component.Output) []string {
	var s []string
	for _, m := range out.Messages {
		s = append(s, string(m.Payload))
	}
	return s
}

func failures(out *component.Output) map[int32]string {
	f := map[int32]string{}
	for _, x := range out.Failures {
		f[x.Ref] = x.Err.Error()
	}
	return f
}

func TestHandmadePassesRecords(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{})
	in := msgs("a", "b", "c")
	out := process(t, tr, in)
	if got := strings.Join(payloads(out), ","); got != "a,b,c" {
		t.Fatalf("outputs = %q", got)
	}
	if d := tr.Description(); d.Name != "handmade" {
		t.Errorf("description = %+v", d)
	}
}

func TestTrapFailsOnlyItsRecord(t *testing.T) {
	for _, cursor := range []bool{true} {
		tr := transformer(t, wasmtest.ABIModule{PerRecord: cursor}.Bytes(), wasmhost.TransformerConfig{})
		in := msgs("a", "b", "c", "!trap", "e", "f", "g")
		out := process(t, tr, in)
		if got := strings.Join(payloads(out), ","); got != "a,b,c,e,f,g" {
			t.Errorf("outputs = %q", got)
		}
		f := failures(out)
		if len(f) != 1 || !strings.Contains(f[3], "wasm trap: wasm error: unreachable") {
			t.Errorf("failures = %v", f)
		}
		if component.ClassOf(out.Failures[0].Err) != component.ClassEventPermanent {
			t.Errorf("class = %v", component.ClassOf(out.Failures[0].Err))
		}
		// The instance was replaced: the next batch works.
		if got := payloads(process(t, tr, msgs("x"))); len(got) != 1 {
			t.Errorf("after trap: %v", got)
		}
	}
}

func TestInfiniteLoopStoppedWithinBudget(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Timeout: 50 * time.Millisecond})
	start := time.Now()
	out := process(t, tr, msgs("a", "@loop", "c"))
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v to stop a 50ms budget", time.Since(start))
	}
	if got := strings.Join(payloads(out), ","); got != "a,c" {
		t.Errorf("outputs = %q", got)
	}
	if f := failures(out); !strings.Contains(f[1], "exceeded its time budget of 50ms") {
		t.Errorf("failures = %v", f)
	}
}

// A guest in a loop must not hold up the garbage collector: the host's
// check yields to the scheduler about every millisecond. Collections run
// back to back while the guest loops for its budget; a guest that stalled
// them would let one at most finish before the call returns.
func TestLoopingGuestDoesNotStallGC(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Timeout: 2 * time.Second})
	var gcs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				gcs.Add(1)
			}
		}
	}()
	process(t, tr, msgs("@loop"))
	n := gcs.Load()
	close(stop)
	wg.Wait()
	if n < 10 {
		t.Errorf("%d garbage collections finished while the guest looped for its 2s budget: the guest stalls them", n)
	}
}

// TestHostileGoGuest runs every misbehaviour of the hostile guest between
// good records and checks each record's fate. The time budget is the
// subject of "loop" alone: it runs in a batch under a 300ms budget, the
// others under a budget no machine reaches, so that on a slow one (the race
// detector) "giant" meets the output cap and "bomb" the memory limit, not
// the clock.
func TestHostileGoGuest(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	set := metrics.New()
	cfg := wasmhost.TransformerConfig{Task: "t1", Timeout: 300 * time.Millisecond, Metrics: set, Instances: 2,
		MaxOutput: 4 << 20, Config: []byte(`{"tag":"x"}`)}
	short := transformer(t, wasm, cfg)
	cfg.Task, cfg.Timeout = "t1-long", testkit.Scale(testkit.DefaultWait)
	long := transformer(t, wasm, cfg)
	cases := []struct {
		do      string
		outputs []string // nil: fails
		fail    string
		retry   bool
		budget  bool // the time budget is the subject
	}{
		{"ok", []string{`{"do":"ok"}`}, "", false, false},
		{"panic", nil, "panic in handler: assignment to entry in nil map", false, false},
		{"loop", nil, "exceeded its time budget of 300ms", false, true},
		{"bomb", nil, "", false, false}, // a trap: out of memory
		{"exit", nil, "module exited with code 7", false, false},
		{"giant", nil, "output exceeds max_output", false, false},
		{"file", nil, "code 9", false, false},
		{"env", []string{"0"}, "", false, false},
		{"fail", nil, "wasm module TestHostileGoGuest: module failed the record (code 42): told to fail", false, false},
		{"retry", nil, "wasm module TestHostileGoGuest: module asked to retry the record (code 1): told to retry", true, false},
		{"drop", []string{}, "", false, false},
		{"split", []string{`{"part":1}`, `{"part":2}`}, "", false, false},
		{"ok", []string{`{"do":"ok"}`}, "", false, true},
		{"split", []string{`{"part":1}`, `{"part":2}`}, "", false, true},
	}
	byCase := map[int][]string{}
	fails := map[int]error{}
	for _, budget := range []bool{false, true} {
		tr, idx := long, []int{}
		if budget {
			tr = short
		}
		var in []string
		for i, c := range cases {
			if c.budget == budget {
				in = append(in, fmt.Sprintf(`{"do":%q}`, c.do))
				idx = append(idx, i)
			}
		}
		out := process(t, tr, msgs(in...))
		for _, m := range out.Messages {
			byCase[idx[m.Ref]] = append(byCase[idx[m.Ref]], string(m.Payload))
		}
		for _, f := range out.Failures {
			fails[idx[f.Ref]] = f.Err
		}
	}
	for i, c := range cases {
		t.Run(c.do, func(t *testing.T) {
			err := fails[i]
			if c.outputs != nil {
				if err != nil {
					t.Fatalf("failed: %v", err)
				}
				if got := strings.Join(byCase[i], " "); got != strings.Join(c.outputs, " ") {
					t.Fatalf("outputs = %q, want %q", got, c.outputs)
				}
				return
			}
			// A fail that names the module is the whole reason
			// (docs/abi.md 4.2); the others are part of it.
			if strings.HasPrefix(c.fail, "wasm module ") && (err == nil || err.Error() != c.fail) {
				t.Fatalf("err = %v, want %q", err, c.fail)
			}
			if err == nil || !strings.Contains(err.Error(), c.fail) {
				t.Fatalf("err = %v, want it to contain %q", err, c.fail)
			}
			wantClass := component.ClassEventPermanent
			if c.retry {
				wantClass = component.ClassRetryable
			}
			if component.ClassOf(err) != wantClass {
				t.Errorf("class = %v, want %v", component.ClassOf(err), wantClass)
			}
		})
	}
	if n := value(set.Counter("wasm_call_failures_total", "", "task", "module", "reason").WithLabelValues("t1", t.Name(), "timeout")); n < 1 {
		t.Errorf("timeouts counted: %v", n)
	}
}

func TestGoGuestMetadataAndState(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	set := metrics.New()
	tr := transformer(t, wasm, wasmhost.TransformerConfig{Task: "t2", Metrics: set, Instances: 2})
	in := msgs(`{"do":"meta"}`, `{"do":"attrs"}`)
	in[0].Key = []byte("k1")
	in[1].Key = []byte("k1")
	in[1].Event = []byte(`{"id":"ev-1","data":{}}`)
	in[1].Time = time.UnixMilli(1700000000123)
	in[1].Headers = []message.Header{{Key: "h0", Value: []byte("a")}, {Key: "h1", Value: []byte("b")}}
	in[1].Pos = message.Position{Stream: "orders", Partition: 3, Offset: 99}
	out := process(t, tr, in)
	if len(out.Messages) != 2 {
		t.Fatalf("outputs %v failures %v", payloads(out), failures(out))
	}
	m := out.Messages[0]
	if string(m.Key) != "k2" || len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != "v" {
		t.Errorf("meta output: key %q headers %v", m.Key, m.Headers)
	}
	if got := string(out.Messages[1].Payload); got != "ev-1|k1|true|orders|3|99|1700000000123|b" {
		t.Errorf("attrs = %q", got)
	}
	if string(out.Messages[1].Key) != "k1" {
		t.Errorf("key not kept: %q", out.Messages[1].Key)
	}

	// State survives instance replacement: count, kill the instance with a
	// trap, count again.
	for i, want := range []string{"1", "2"} {
		out := process(t, tr, msgs(`{"do":"count","key":"a"}`))
		if got := payloads(out); len(got) != 1 || got[0] != want {
			t.Fatalf("round %d: count = %v %v", i, got, failures(out))
		}
		process(t, tr, msgs(`{"do":"exit"}`))
	}
	if v, ok := tr.KV().Get([]byte("a")); !ok || string(v) != "2" {
		t.Errorf("kv a = %q %v", v, ok)
	}
	if n := value(set.FloatCounter("wasm_guest_counter_total", "", "task", "module", "name").WithLabelValues("t2", t.Name(), "counted")); n != 2 {
		t.Errorf("guest counter = %v", n)
	}
	if n := value(set.Gauge("wasm_guest_gauge", "", "task", "module", "name").WithLabelValues("t2", t.Name(), "last")); n != 2 {
		t.Errorf("guest gauge = %v", n)
	}
}

func TestGoGuestInitRejectsConfig(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	ctx := context.Background()
	m, err := sharedHost(t).Load(ctx, "hostile", wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ config, want string }{
		{`{"reject":true}`, "module rejected its config: reject is set"},
		{`{"rejet":true}`, `module rejected its config: invalid config: unknown field "rejet"`},
		// An Init error without a message still rejects the config: its
		// region (0, 0) would read as 0, "accept".
		{`{"tag":"reject-silently"}`, "module rejected its config: "},
		// A message over 4 KiB is cut, not taken for a broken module.
		{`{"tag":"reject-at-length"}`, "module rejected its config: too long: \u00e9\u00e9"},
	} {
		_, err = m.NewTransformer(wasmhost.TransformerConfig{Config: []byte(tc.config)}).Start(ctx)
		var ce *wasmhost.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: err = %v, want %q", tc.config, err, tc.want)
		}
	}
}

func TestConcurrentProcess(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Instances: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				in := msgs("a", "b", fmt.Sprint(g, i))
				if i%10 == 0 {
					in[1].Payload = []byte("!")
				}
				out := &component.Output{}
				if err := tr.Process(context.Background(), in, out); err != nil {
					t.Error(err)
					return
				}
				want := 3
				if i%10 == 0 {
					want = 2
				}
				if len(out.Messages) != want {
					t.Errorf("got %d outputs, want %d", len(out.Messages), want)
				}
			}
		}()
	}
	wg.Wait()
}

func value(c interface{ Value() float64 }) float64 {
	return c.Value()
}

// TestSandboxRefuses checks that files and sockets are out of reach even
// through raw WASI calls: no directory is preopened and no socket exists.
func TestSandboxRefuses(t *testing.T) {
	for _, probe := range []string{"sock_accept", "path_open"} {
		t.Run(probe, func(t *testing.T) {
			tr := transformer(t, wasmtest.ABIModule{Probe: probe}.Bytes(), wasmhost.TransformerConfig{})
			out := process(t, tr, msgs("x"))
			// errno 8 is EBADF: fd 3 is neither a socket nor a directory.
			if f := failures(out); len(f) != 1 || !strings.Contains(f[0], "(code 8): probe") {
				t.Fatalf("outputs %v failures %v", payloads(out), f)
			}
		})
	}
}

// TestLoadChecksTheABI: a module's imports and exports are checked
// against the ABI when it is loaded, before anything runs, and the error
// names each mismatch with the signature found and the one wanted.
func TestLoadChecksTheABI(t *testing.T) {
	i32 := []byte{wasmtest.I32}
	// abi is a module with every export the ABI requires, sluice_alloc's
	// type and the memory export left to the case.
	abi := func(alloc wasmtest.FuncType, memory bool) []byte {
		return wasmtest.Module{
			Funcs: []wasmtest.Func{
				{Type: wasmtest.FuncType{Results: i32}, Export: "sluice_abi_version", Body: wasmtest.Code{}.I32Const(1)},
				{Type: alloc, Export: "sluice_alloc", Body: wasmtest.Code{}.I32Const(0)},
				{Type: wasmtest.FuncType{Results: []byte{wasmtest.I64}}, Export: "sluice_describe", Body: wasmtest.Code{}.I64Const(0)},
				{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I64}}, Export: "sluice_process", Body: wasmtest.Code{}.I64Const(0)},
			},
			MemoryPages:  1,
			ExportMemory: memory,
		}.Bytes()
	}
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"import signature", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "sluice", Name: "log", Type: wasmtest.FuncType{Params: i32}}}}.Bytes(),
			"imports sluice.log with signature (i32) -> (), want (i32, i32, i32) -> ()"},
		{"unknown host function", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "sluice", Name: "exec", Type: wasmtest.FuncType{}}}}.Bytes(),
			"imports sluice.exec, which does not exist (the sluice module offers "},
		{"import outside the sandbox", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "env", Name: "connect", Type: wasmtest.FuncType{}}}}.Bytes(),
			"imports env.connect, which the sandbox does not grant"},
		{"missing export", wasmtest.ABIModule{NoDescribe: true}.Bytes(), "does not export sluice_describe"},
		{"export signature", abi(wasmtest.FuncType{Results: i32}, true), "exports sluice_alloc with signature () -> (i32), want (i32) -> (i32)"},
		{"memory not exported", abi(wasmtest.FuncType{Params: i32, Results: i32}, false), `does not export its memory as "memory"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := sharedHost(t).Load(context.Background(), t.Name(), c.wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error saying %q", err, c.want)
			}
		})
	}
	// The same module with the right type and its memory exported loads.
	if _, err := sharedHost(t).Load(context.Background(), "abi", abi(wasmtest.FuncType{Params: i32, Results: i32}, true), wasmhost.LoadOptions{MemoryLimit: testMemoryLimit}); err != nil {
		t.Fatalf("the well-formed module: %v", err)
	}
}
