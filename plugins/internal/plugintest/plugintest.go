// Package plugintest runs first-party plugins end to end in their tests:
// it builds a plugin to WASM the way `sluice plugin build` does (once per
// content, shared by every test binary through os.TempDir()), loads it
// into the real host (runtime/wasmhost) on the repository-wide compilation
// cache, and pushes records through it.
package plugintest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// MemoryLimit is the limit plugins are loaded with: the wasm transform's
// default, so the compiled code matches what a task uses.
const MemoryLimit = 32 << 20

// BuildFlags are the `go build` flags of a plugin (GOOS=wasip1
// GOARCH=wasm); `sluice plugin build` uses the same.
var BuildFlags = []string{"-buildmode=c-shared", "-trimpath", "-ldflags=-s -w"}

// ModuleDir is the folder of the plugins module.
func ModuleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildMu sync.Mutex
	builds  = map[string]*build{}
)

type build struct {
	once sync.Once
	wasm []byte
	err  error
}

// Build compiles the Go plugin in plugins/<name> to WASM and returns its
// bytes. The result is kept under os.TempDir(), keyed by the Go version
// and the hash of every source it depends on.
func Build(t testing.TB, name string) []byte {
	t.Helper()
	buildMu.Lock()
	b := builds[name]
	if b == nil {
		b = &build{}
		builds[name] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.wasm, b.err = buildPlugin(name) })
	if b.err != nil {
		t.Fatalf("build plugin %s: %v", name, b.err)
	}
	return b.wasm
}

func buildPlugin(name string) ([]byte, error) {
	mod := ModuleDir()
	wasm, _, err := wasmtest.BuildCached(mod, name, BuildFlags,
		[]string{filepath.Join(mod, name), filepath.Join(mod, "internal"), filepath.Join(mod, "..", "sdk")},
		[]string{filepath.Join(mod, "go.mod")})
	return wasm, err
}

var (
	hostOnce sync.Once
	host     *wasmhost.Host
	hostErr  error
)

// Host is one Host per test binary on the repository-wide compilation
// cache (wasmtest.CacheDir), so a plugin compiles once per machine.
func Host(t testing.TB) *wasmhost.Host {
	t.Helper()
	hostOnce.Do(func() {
		host, hostErr = wasmhost.New(context.Background(), wasmhost.Options{CacheDir: wasmtest.CacheDir()})
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return host
}

// Load loads wasm into the shared host and starts a transformer with
// config (JSON; "" for none). The transformer closes with the test.
func Load(t testing.TB, name string, wasm []byte, config string, cfg wasmhost.TransformerConfig) *wasmhost.Transformer {
	t.Helper()
	ctx := context.Background()
	m, err := Host(t).Load(ctx, name, wasm, wasmhost.LoadOptions{MemoryLimit: MemoryLimit})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if config != "" {
		cfg.Config = []byte(config)
	}
	tr := m.NewTransformer(cfg)
	if _, err := tr.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

// Events returns messages whose payload and event are the given JSON
// documents, at offsets 0, 1, ... of stream "test".
func Events(docs ...string) []message.Message {
	in := make([]message.Message, len(docs))
	for i, d := range docs {
		b := []byte(d)
		in[i] = message.Message{Payload: b, Event: b, Ref: int32(i), Pos: message.Position{Stream: "test", Offset: int64(i)}, Time: time.Unix(1700000000, 0)}
	}
	return in
}

// Result is what a batch produced: output payloads in order, with the Ref
// of their input, and the failures.
type Result struct {
	Payloads []string
	Refs     []int32
	Keys     []string
	Failures []component.Failure
}

// Run processes in as one Process call and returns what came out.
func Run(t testing.TB, tr *wasmhost.Transformer, in []message.Message) Result {
	t.Helper()
	var out component.Output
	if err := tr.Process(context.Background(), in, &out); err != nil {
		t.Fatalf("process: %v", err)
	}
	var r Result
	for _, m := range out.Messages {
		r.Payloads = append(r.Payloads, string(m.Payload))
		r.Refs = append(r.Refs, m.Ref)
		r.Keys = append(r.Keys, string(m.Key))
	}
	r.Failures = append(r.Failures, out.Failures...)
	return r
}

// Bench runs in through tr b.N times on one locked OS thread and reports
// events/s, and CPU time per event and events per CPU second (on a shared
// machine wall time also counts other processes).
func Bench(b *testing.B, tr *wasmhost.Transformer, in []message.Message, wantOut int) {
	wasmtest.RunBatches(b, tr, in, wantOut)
}

// Event250 is a CloudEvent of about 250 bytes, as on the bench workload
// (the same shape as wasmhost's benchmarks).
func Event250(i int) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"orders-0-%06d","source":"bench","type":"order.created","time":"2026-01-02T03:04:05Z","data":{"order":%d,"name":"ada lovelace","region":"eu-west-1","amount":123.45,"items":[1,2,3]}}`, i, i)
}

// BenchBatch is n Event250 messages.
func BenchBatch(n int) []message.Message {
	in := make([]message.Message, n)
	for i := range in {
		b := Event250(i)
		in[i] = message.Message{Payload: b, Event: b, Ref: int32(i), Pos: message.Position{Stream: "orders", Offset: int64(i)}, Time: time.Unix(1700000000, 0)}
	}
	return in
}

// CheckREADME fails t unless the config table of README.md (in the test's
// folder: the rows of the "## Config" section) lists exactly params, in
// order, so that the reference cannot drift from the plugin.
func CheckREADME(t testing.TB, params []string) {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Config"
		case in && strings.HasPrefix(line, "| `"):
			name, _, _ := strings.Cut(line[3:], "`")
			documented = append(documented, name)
		}
	}
	if strings.Join(documented, " ") != strings.Join(params, " ") {
		t.Errorf("README.md's config table lists %q; the plugin declares %q", documented, params)
	}
}

// ParamNames returns the parameter names of a self-description decoded
// from JSON (sdktest's Describe).
func ParamNames(d map[string]any) []string {
	var names []string
	ps, _ := d["parameters"].([]any)
	for _, p := range ps {
		m, _ := p.(map[string]any)
		n, _ := m["name"].(string)
		names = append(names, n)
	}
	return names
}
