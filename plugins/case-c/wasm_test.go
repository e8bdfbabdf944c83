package casec

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

func committed(t testing.TB) []byte {
	t.Helper()
	wasm, err := os.ReadFile("case-c.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestWASM(t *testing.T) { check(t, committed(t)) }

// TestRebuild rebuilds the module when clang and wasi-libc are installed:
// the bytes should match the committed module; if the toolchain differs,
// the rebuilt module must pass the same tests.
func TestRebuild(t *testing.T) {
	if out, err := exec.Command("sh", "build.sh", "--check").CombinedOutput(); err != nil {
		t.Skipf("%s: testing the committed module only", strings.TrimSpace(string(out)))
	}
	out := filepath.Join(t.TempDir(), "case-c.wasm")
	cmd := exec.Command("sh", "build.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	rebuilt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rebuilt, committed(t)) {
		return
	}
	t.Logf("the rebuilt module (%d bytes) differs from the committed one (%d bytes): another toolchain; testing it", len(rebuilt), len(committed(t)))
	check(t, rebuilt)
}

func check(t *testing.T, wasm []byte) {
	t.Helper()
	insp, err := plugintest.Host(t).Inspect(context.Background(), "case-c.wasm", wasm, wasmhost.LoadOptions{MemoryLimit: plugintest.MemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	if insp.Description.Name != "case-c" || len(insp.Description.Parameters) != 2 || insp.Size > 64<<10 {
		t.Errorf("inspection %+v", insp)
	}
	var names []string
	for _, p := range insp.Description.Parameters {
		names = append(names, p.Name)
	}
	plugintest.CheckREADME(t, names)
	tr := plugintest.Load(t, "case-c.wasm", wasm, `{"fields":["data.name","$.data.who.city","data.n"]}`, wasmhost.TransformerConfig{})
	r := plugintest.Run(t, tr, plugintest.Events(
		`{"data":{"name":"ada lovelace","who":{"city":"london"}}}`,
		`{"data":{"name":"ALREADY"}}`,
		`{"data":{"other":"x","n":5}}`,
		`{"data":{"name":"caf\u00e9 \n tab\t","who":{"city":"x"},"name2":"y"}}`,
	))
	want := []string{
		`{"data":{"name":"ADA LOVELACE","who":{"city":"LONDON"}}}`,
		`{"data":{"name":"ALREADY"}}`,
		`{"data":{"other":"x","n":5}}`,
		`{"data":{"name":"CAF\u00e9 \n TAB\t","who":{"city":"X"},"name2":"y"}}`,
	}
	if len(r.Failures) > 0 || strings.Join(r.Payloads, "\n") != strings.Join(want, "\n") {
		t.Errorf("outputs:\n%s\nwant:\n%s\nfailures %v", strings.Join(r.Payloads, "\n"), strings.Join(want, "\n"), r.Failures)
	}
	lower := plugintest.Load(t, "case-c.wasm", wasm, `{"fields":["id"],"mode":"lower"}`, wasmhost.TransformerConfig{})
	if r := plugintest.Run(t, lower, plugintest.Events(`{"id":"ABC-1"}`)); len(r.Payloads) != 1 || r.Payloads[0] != `{"id":"abc-1"}` {
		t.Errorf("lower: %+v", r)
	}
	m, err := plugintest.Host(t).Load(context.Background(), "case-c.wasm", wasm, wasmhost.LoadOptions{MemoryLimit: plugintest.MemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ config, want string }{
		{`{}`, "fields: list at least one field"},
		{`{"fields":["a..b"]}`, "fields: a path is empty"},
		{`{"fields":["a"],"mode":"title"}`, `mode: want "upper" or "lower"`},
		{`{"fields":["a"],"case":"upper"}`, "unknown config key"},
	} {
		tr := m.NewTransformer(wasmhost.TransformerConfig{Config: []byte(tc.config)})
		_, err := tr.Start(context.Background())
		tr.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: %v, want %q", tc.config, err, tc.want)
		}
	}
}

// BenchmarkCGuestUpper is the C-guest target of docs/abi.md (>= 1.5M
// events/s on one core): upper-case one field of ~250-byte events, 256 per
// call, framing included; the same work as wasmhost's
// BenchmarkGoGuestUpper.
func BenchmarkCGuestUpper(b *testing.B) {
	tr := plugintest.Load(b, "case-c.wasm", committed(b), `{"fields":["data.name"]}`, wasmhost.TransformerConfig{})
	in := plugintest.BenchBatch(256)
	plugintest.Bench(b, tr, in, len(in))
}
