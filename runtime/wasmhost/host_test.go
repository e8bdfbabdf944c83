package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
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
// check yields to the scheduler about every millisecond.
func TestLoopingGuestDoesNotStallGC(t *testing.T) {
	tr := transformer(t, wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.TransformerConfig{Timeout: 2 * time.Second})
	started := make(chan struct{})
	var gcDone, callDone time.Time
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-started
		time.Sleep(100 * time.Millisecond) // let the guest enter its loop
		runtime.GC()
		gcDone = time.Now()
	}()
	close(started)
	process(t, tr, msgs("@loop"))
	callDone = time.Now()
	wg.Wait()
	if !gcDone.Before(callDone) {
		t.Errorf("GC finished %v after the looping call returned: the guest stalled it", gcDone.Sub(callDone))
	}
}

func TestLoadRejects(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("hello"), "not a WebAssembly module"},
		{"import not granted", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "env", Name: "socket", Type: wasmtest.FuncType{}}}}.Bytes(),
			"imports env.socket, which the sandbox does not grant"},
		{"unknown sluice import", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "sluice", Name: "exec", Type: wasmtest.FuncType{}}}}.Bytes(),
			"imports sluice.exec, which does not exist"},
		{"bad import signature", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "sluice", Name: "log", Type: wasmtest.FuncType{}}}}.Bytes(),
			"imports sluice.log with signature () -> (), want (i32, i32, i32) -> ()"},
		{"missing export", wasmtest.ABIModule{NoDescribe: true}.Bytes(), "does not export sluice_describe"},
		{"memory over limit", wasmtest.ABIModule{Pages: 2048}.Bytes(), "more than the memory limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sharedHost(t).Load(ctx, "m", tc.wasm, wasmhost.LoadOptions{MemoryLimit: testMemoryLimit})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStartRejects(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"wrong ABI version", wasmtest.ABIModule{Version: 99}.Bytes(), "module speaks Sluice ABI version 99; this host speaks version 1"},
		{"init error", wasmtest.ABIModule{InitError: "field is required"}.Bytes(), "module rejected its config: field is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := sharedHost(t).Load(ctx, "m", tc.wasm, wasmhost.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tr := m.NewTransformer(wasmhost.TransformerConfig{})
			_, err = tr.Start(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	in, err := sharedHost(t).Inspect(context.Background(), "m", wasmtest.ABIModule{PerRecord: true}.Bytes(), wasmhost.LoadOptions{MemoryLimit: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if in.ABIVersion != 1 || in.Description.Name != "handmade" || len(in.Description.Parameters) != 1 ||
		in.MemoryMaxPages != 512 || in.InstrumentedLoops != 2 || len(in.Imports) != 0 {
		t.Errorf("inspection = %+v", in)
	}
}

func TestOutputCap(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	tr := transformer(t, wasm, wasmhost.TransformerConfig{MaxOutput: 1 << 20})
	out := process(t, tr, msgs(`{"do":"split"}`, `{"do":"split"}`, `{"x":1}`))
	if len(out.Messages) != 5 || len(out.Failures) != 0 {
		t.Fatalf("split: %v %v", payloads(out), failures(out))
	}
}

// TestHostileGoGuest runs every misbehaviour of the hostile guest in one
// batch, between good records, and checks each record's fate.
func TestHostileGoGuest(t *testing.T) {
	wasm, _ := wasmtest.GoGuest(t, "hostile")
	set := metrics.New()
	tr := transformer(t, wasm, wasmhost.TransformerConfig{Task: "t1", Timeout: 300 * time.Millisecond, Metrics: set, Instances: 2,
		MaxOutput: 4 << 20, Config: []byte(`{"tag":"x"}`)})
	cases := []struct {
		do      string
		outputs []string // nil: fails
		fail    string
		retry   bool
	}{
		{"ok", []string{`{"do":"ok"}`}, "", false},
		{"panic", nil, "panic in handler: assignment to entry in nil map", false},
		{"loop", nil, "exceeded its time budget of 300ms", false},
		{"bomb", nil, "", false}, // a trap (out of memory) or, on a slow machine, the time budget
		{"exit", nil, "module exited with code 7", false},
		{"giant", nil, "output exceeds max_output", false},
		{"file", nil, "code 9", false},
		{"env", []string{"0"}, "", false},
		{"fail", nil, "module failed the record (code 42): told to fail", false},
		{"retry", nil, "module asked to retry the record (code 1): told to retry", true},
		{"drop", []string{}, "", false},
		{"split", []string{`{"part":1}`, `{"part":2}`}, "", false},
	}
	var in []string
	for _, c := range cases {
		in = append(in, fmt.Sprintf(`{"do":%q}`, c.do))
	}
	out := process(t, tr, msgs(in...))
	byRef := map[int32][]string{}
	for _, m := range out.Messages {
		byRef[m.Ref] = append(byRef[m.Ref], string(m.Payload))
	}
	fails := map[int32]error{}
	for _, f := range out.Failures {
		fails[f.Ref] = f.Err
	}
	for i, c := range cases {
		t.Run(c.do, func(t *testing.T) {
			err := fails[int32(i)]
			if c.outputs != nil {
				if err != nil {
					t.Fatalf("failed: %v", err)
				}
				if got := strings.Join(byRef[int32(i)], " "); got != strings.Join(c.outputs, " ") {
					t.Fatalf("outputs = %q, want %q", got, c.outputs)
				}
				return
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
	if n := value(set.Counter("wasm_guest_counter_total", "", "task", "module", "name").WithLabelValues("t2", t.Name(), "counted")); n != 2 {
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

func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
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
