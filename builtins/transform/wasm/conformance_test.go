package wasm

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestConformance runs the suite on a Go guest that upper-cases payloads,
// with two instances (as two workers would have) and small calls.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	upper, _ := wasmtest.GoGuest(t, "upper")
	writeModule(t, dir, "upper.wasm", upper)
	componenttest.Transform(t, componenttest.TransformSuite{
		New: func(tb testing.TB) component.Transform {
			t := tb.(*testing.T)
			cfg, p := decode(t, "module = \"upper.wasm\"\nmax_batch = 2\ntimeout = \"5s\"\n")
			if p.Len() > 0 {
				t.Fatal(problems(p))
			}
			e := env(t, dir, "")
			e.Concurrency = 2
			tr, err := build(cfg, e)
			if err != nil {
				t.Fatalf("%v\n%s", err, problems(e.Problems))
			}
			return tr.(component.Transform)
		},
		Inputs: [][]byte{
			[]byte(`{"specversion":"1.0","id":"1","data":{"name":"ada"}}`),
			[]byte(`{"data":{"name":"grace","n":[1,2]}}`),
			[]byte(`{ "data" : { "name" : "spaced" } }`),
			[]byte(`plain text`),
			[]byte(`{"data":{"name":"\u00e9t\u00e9 \"q\""}}`),
		},
	})
}

// TestPayloadReachesTheModuleAsItIs: the host hands a module the payload's
// bytes unchanged (no compaction, no re-encoding): spacing, key order and
// escapes are the previous stage's.
func TestPayloadReachesTheModuleAsItIs(t *testing.T) {
	dir := t.TempDir()
	upper, _ := wasmtest.GoGuest(t, "upper")
	writeModule(t, dir, "upper.wasm", upper)
	cfg, p := decode(t, "module = \"upper.wasm\"\n")
	if p.Len() > 0 {
		t.Fatal(problems(p))
	}
	e := env(t, dir, "")
	tr, err := build(cfg, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, problems(e.Problems))
	}
	defer tr.(component.Closer).Close(context.Background())
	in := `{ "z" : 1,  "data" : { "name" : "ad\u00e0\n\"b\"\t\/c" } }`
	got := componenttest.Apply(t, tr.(component.Transform), in)
	want := `{ "z" : 1,  "data" : { "name" : "AD\u00e0\n\"B\"\t\/C" } }`
	if got[0] != want {
		t.Fatalf("got  %s\nwant %s", got[0], want)
	}
	if !json.Valid([]byte(got[0])) {
		t.Fatalf("invalid JSON: %s", got[0])
	}
}
